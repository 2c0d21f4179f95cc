// A store written the way a third party would write one: from the published types and docs only,
// importing nothing but the package's public entry points. It proves that `stowage/conformance` can
// check a store that is not stowage's own.
import {
  type CommitOptions,
  type OutboxLimits,
  type OutboxPage,
  type RenameOptions,
  type SessionDelta,
  type SessionRecord,
  type SessionStore,
  type StoredRecord,
  type StoreEvent,
  type StoreEventListener,
  type StoreLock,
  StowageError,
} from "stowage";

interface Alias {
  target: string;
  verifier: string;
  until: number;
}

const copy = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;
const expiry = (r: SessionRecord) => Math.min(r.expiresAt, r.idleExpiresAt);

/** Sessions in two Maps; everything is copied in and out, expiry is checked on read and by sweep. */
export class MapStore implements SessionStore {
  readonly name = "map";
  readonly #records = new Map<string, SessionRecord>();
  readonly #aliases = new Map<string, Alias>();
  readonly #locks = new Map<string, { token: symbol; until: number }>();
  readonly #fences = new Map<string, number>();
  readonly #listeners = new Set<StoreEventListener>();
  /** Outboxes by record id; every path that removes a record removes its outbox. */
  readonly #outboxes = new Map<string, { last: number; dropped: number; kept: string[] }>();

  #live(id: string): SessionRecord | undefined {
    const record = this.#records.get(id);
    return record && expiry(record) > Date.now() ? record : undefined;
  }

  #alias(id: string): Alias | undefined {
    const alias = this.#aliases.get(id);
    return alias && alias.until > Date.now() ? alias : undefined;
  }

  async insert(record: SessionRecord): Promise<void> {
    if (this.#live(record.id) || this.#alias(record.id)) {
      throw new StowageError("DUPLICATE_ID", "that id exists");
    }
    this.#outboxes.delete(record.id);
    this.#records.set(record.id, copy(record));
  }

  async get(id: string): Promise<StoredRecord | undefined> {
    const record = this.#live(id);
    if (record) return copy(record);
    let alias = this.#alias(id);
    const first = alias;
    for (let hop = 0; alias && hop < 16; hop++) {
      const target = this.#live(alias.target);
      if (target)
        return { ...copy(target), via: { from: id, verifier: first!.verifier, until: first!.until } };
      alias = this.#alias(alias.target);
    }
    return undefined;
  }

  async commit(id: string, delta: SessionDelta, options: CommitOptions = {}): Promise<number> {
    const record = this.#live(id);
    if (!record) throw new StowageError("SESSION_ENDED", "no such session");
    if (options.ifVersion !== undefined && options.ifVersion !== record.version) {
      throw new StowageError("VERSION_CONFLICT", "the session changed");
    }
    const next = copy(record);
    for (const key of delta.unset ?? []) delete next.attributes[key];
    for (const [key, value] of Object.entries(copy(delta.set ?? {}))) {
      Object.defineProperty(next.attributes, key, {
        value,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    for (const [key, value] of Object.entries(delta.meta ?? {})) {
      if (value === undefined) continue;
      if (value === null) delete (next as unknown as Record<string, unknown>)[key];
      else (next as unknown as Record<string, unknown>)[key] = copy(value);
    }
    next.version += 1;
    this.#records.set(id, next);
    return next.version;
  }

  async rename(oldId: string, newRecord: SessionRecord, options: RenameOptions): Promise<number> {
    const old = this.#live(oldId);
    if (!old) throw new StowageError("SESSION_ENDED", "no such session");
    if (options.ifVersion !== undefined && options.ifVersion !== old.version) {
      throw new StowageError("VERSION_CONFLICT", "the session changed");
    }
    if (this.#live(newRecord.id) || this.#alias(newRecord.id)) {
      throw new StowageError("DUPLICATE_ID", "the new id exists");
    }
    const version = old.version + 1;
    this.#records.set(newRecord.id, { ...copy(newRecord), version });
    this.#records.delete(oldId);
    this.#outboxes.delete(oldId);
    if (options.graceMs > 0) {
      this.#aliases.set(oldId, {
        target: newRecord.id,
        verifier: old.verifier,
        until: Date.now() + options.graceMs,
      });
    }
    return version;
  }

  async consume(id: string, check: (record: SessionRecord) => boolean): Promise<SessionRecord | undefined> {
    const record = this.#live(id);
    if (!record || !check(copy(record))) return undefined;
    this.#records.delete(id);
    this.#outboxes.delete(id);
    return copy(record);
  }

  async delete(id: string): Promise<boolean> {
    const existed = this.#live(id) !== undefined;
    this.#records.delete(id);
    this.#outboxes.delete(id);
    return existed;
  }

  async touch(id: string, idleExpiresAt: number): Promise<void> {
    const record = this.#live(id);
    if (record) this.#records.set(id, { ...record, idleExpiresAt });
  }

  async listByUser(userId: string): Promise<SessionRecord[]> {
    return [...this.#records.keys()].flatMap((id) => {
      const record = this.#live(id);
      return record?.userId === userId ? [copy(record)] : [];
    });
  }

  async deleteByUser(userId: string, options: { exceptId?: string } = {}): Promise<string[]> {
    const ids = (await this.listByUser(userId)).map((r) => r.id).filter((id) => id !== options.exceptId);
    for (const id of ids) {
      this.#records.delete(id);
      this.#outboxes.delete(id);
    }
    return ids;
  }

  async sweep(now: number): Promise<number> {
    let removed = 0;
    for (const [id, record] of this.#records) {
      if (expiry(record) <= now) {
        this.#records.delete(id);
        this.#outboxes.delete(id);
        removed++;
      }
    }
    for (const [id, alias] of this.#aliases) if (alias.until <= now) this.#aliases.delete(id);
    return removed;
  }

  async *scan(options: { batch?: number } = {}): AsyncIterable<SessionRecord[]> {
    const batch = options.batch ?? 500;
    const live = [...this.#records.keys()].flatMap((id) => {
      const record = this.#live(id);
      return record ? [copy(record)] : [];
    });
    for (let i = 0; i < live.length; i += batch) yield live.slice(i, i + batch);
  }

  async outboxAppend(id: string, messages: string[], limits: OutboxLimits): Promise<number> {
    if (!this.#live(id)) throw new StowageError("SESSION_ENDED", "no such session");
    const box = this.#outboxes.get(id) ?? { last: 0, dropped: 0, kept: [] };
    this.#outboxes.set(id, box);
    box.kept.push(...messages);
    box.last += messages.length;
    const bytes = () => box.kept.reduce((sum, m) => sum + Buffer.byteLength(m), 0);
    while (box.kept.length > 0 && (box.kept.length > limits.maxMessages || bytes() > limits.maxBytes)) {
      box.kept.shift();
      box.dropped = box.last - box.kept.length;
    }
    return box.last;
  }

  async outboxRead(id: string, after: number, limit = Number.POSITIVE_INFINITY): Promise<OutboxPage> {
    const box = this.#live(id) ? this.#outboxes.get(id) : undefined;
    if (!box) return { messages: [], last: 0, droppedThrough: 0 };
    const first = box.last - box.kept.length + 1;
    const messages = box.kept
      .map((data, i) => ({ seq: first + i, data }))
      .filter((m) => m.seq > after)
      .slice(0, limit);
    return { messages, last: box.last, droppedThrough: box.dropped };
  }

  async outboxTrim(id: string, through: number): Promise<void> {
    const box = this.#outboxes.get(id);
    if (!box) return;
    const first = box.last - box.kept.length + 1;
    box.kept.splice(0, Math.max(0, Math.min(box.kept.length, through - first + 1)));
  }

  async lock(id: string, leaseMs: number): Promise<StoreLock | null> {
    const held = this.#locks.get(id);
    if (held && held.until > Date.now()) return null;
    const token = Symbol(id);
    const fence = (this.#fences.get(id) ?? 0) + 1;
    this.#fences.set(id, fence);
    this.#locks.set(id, { token, until: Date.now() + leaseMs });
    return {
      fence,
      release: async () => {
        if (this.#locks.get(id)?.token === token) this.#locks.delete(id);
      },
    };
  }

  async publish(event: StoreEvent): Promise<void> {
    const text = JSON.stringify(event);
    setImmediate(() => {
      for (const listener of [...this.#listeners]) {
        try {
          listener(JSON.parse(text) as StoreEvent);
        } catch (error) {
          process.emitWarning(`a store event listener threw: ${String(error)}`, {
            type: "StowageWarning",
            code: "STOWAGE_LISTENER_THREW",
          });
        }
      }
    });
  }

  async subscribe(listener: StoreEventListener): Promise<() => Promise<void>> {
    const entry: StoreEventListener = (event) => listener(event);
    this.#listeners.add(entry);
    return async () => {
      this.#listeners.delete(entry);
    };
  }

  async close(): Promise<void> {
    this.#listeners.clear();
  }
}
