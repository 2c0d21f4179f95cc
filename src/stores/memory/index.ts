import { performance } from "node:perf_hooks";
import { cloneJson, setOwn } from "../../core/json.js";
import { OptionChecker } from "../../core/options.js";
import { applyMeta, expiryOf, type MetaPatch, type SessionRecord } from "../../core/record.js";
import type {
  CommitOptions,
  OutboxLimits,
  OutboxPage,
  RenameOptions,
  ScanOptions,
  SessionDelta,
  SessionStore,
  StoredRecord,
  StoreEvent,
  StoreEventListener,
  StoreLock,
} from "../../core/store.js";
import { closed, conflict, duplicate, ended } from "../shared/errors.js";
import { EventFanout } from "../shared/events.js";
import { scanBatch } from "../shared/scan.js";
import { borrowRecord, copyMeta, copyRecord } from "./copy.js";
import { type Expiring, ExpiryHeap } from "./heap.js";
import { LruList, type LruNode } from "./lru.js";
import { Outbox } from "./outbox.js";
import { ShardedMap } from "./shards.js";

/** Options for `MemoryStore`. */
export interface MemoryStoreOptions {
  /** Most records kept; past it the least recently used one is evicted. @default Infinity */
  maxEntries?: number;
  /** How often the background timer looks for expired records, in ms. @default 1000 */
  sweepIntervalMs?: number;
}

// One batch of expiry work runs at most this long before yielding to the event loop, and the clock is
// read once per CHECK_EVERY removals so that reading it stays cheap.
const BATCH_BUDGET_MS = 4;
const CHECK_EVERY = 64;

class RecordEntry implements Expiring, LruNode {
  heapIndex = -1;
  newer: LruNode | undefined = undefined;
  older: LruNode | undefined = undefined;
  expiry: number;
  /** The record's outbox, made on the first append; it goes with the entry. */
  outbox: Outbox | undefined = undefined;
  constructor(readonly record: SessionRecord) {
    this.expiry = expiryOf(record);
  }
}

class AliasEntry implements Expiring {
  heapIndex = -1;
  constructor(
    readonly from: string,
    readonly to: string,
    readonly verifier: string,
    public expiry: number,
  ) {}
}

class LockEntry implements Expiring {
  heapIndex = -1;
  constructor(
    readonly id: string,
    readonly fence: number,
    public expiry: number,
  ) {}
}

type Entry = RecordEntry | AliasEntry | LockEntry;

/**
 * An in-process store: a Map of records, one expiry heap for records, rotation aliases and lock leases
 * (so expiring costs O(log n) per expired item and never a scan), an optional LRU bound, and copies in
 * and out so callers never share objects with the store. Expired records are removed by an unref'd timer
 * in time-bounded batches, so even a million records expiring together never stall the event loop.
 *
 * @example
 * const sessions = createSessions({ store: new MemoryStore({ maxEntries: 100_000 }) });
 */
export class MemoryStore implements SessionStore {
  readonly name = "memory";
  private readonly records = new ShardedMap<RecordEntry>();
  private readonly aliases = new Map<string, AliasEntry>();
  private readonly locks = new Map<string, LockEntry>();
  private readonly users = new ShardedMap<Set<string>>();
  private readonly heap = new ExpiryHeap<Entry>();
  private readonly listeners = new EventFanout();
  private readonly maxEntries: number;
  /** Use order, kept only when maxEntries bounds the store. */
  private readonly lru: LruList<RecordEntry> | undefined;
  private readonly timer: NodeJS.Timeout;
  private fence = 0;
  private expiring = false;
  private closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    const check = new OptionChecker("MemoryStore", options, ["maxEntries", "sweepIntervalMs"]);
    const maxEntries = check.count("maxEntries", Number.POSITIVE_INFINITY, { infinite: true });
    const sweepIntervalMs = check.ms("sweepIntervalMs", 1000);
    this.maxEntries = maxEntries;
    this.lru = Number.isFinite(maxEntries) ? new LruList<RecordEntry>() : undefined;
    this.timer = setInterval(() => this.expireInBackground(), sweepIntervalMs);
    this.timer.unref();
  }

  /** Number of records held, including expired ones the timer has not removed yet. */
  get size(): number {
    return this.records.size;
  }

  async insert(record: SessionRecord): Promise<void> {
    this.assertOpen();
    const now = Date.now();
    if (this.live(record.id, now) || this.liveAlias(record.id, now)) {
      throw duplicate();
    }
    this.add(new RecordEntry(copyRecord(record)));
  }

  async get(id: string): Promise<StoredRecord | undefined> {
    return this.find(id, copyRecord);
  }

  /** Like `get`, lending the stored record instead of copying it: the load path's fast lane (see the store contract). */
  async peek(id: string): Promise<StoredRecord | undefined> {
    return this.find(id, lend);
  }

  /** `peek`, answered at once (see `SyncLane`). */
  peekNow(id: string, now = Date.now()): StoredRecord | undefined {
    return this.find(id, lend, now);
  }

  private find(
    id: string,
    copy: (record: SessionRecord) => SessionRecord,
    now = Date.now(),
  ): StoredRecord | undefined {
    this.assertOpen();
    const entry = this.live(id, now);
    if (entry) {
      this.use(entry);
      return copy(entry.record);
    }
    const alias = this.liveAlias(id, now);
    if (!alias) return undefined;
    // Two rotations inside one grace window chain aliases; a rename with no grace breaks the chain.
    let target = this.live(alias.to, now);
    for (let hop = this.liveAlias(alias.to, now); !target && hop; hop = this.liveAlias(hop.to, now)) {
      target = this.live(hop.to, now);
    }
    if (!target) return undefined;
    this.use(target);
    // A record of its own even when lending: `via` must not land on the stored one.
    const out: StoredRecord = copy === lend ? borrowRecord(target.record) : copy(target.record);
    out.via = { from: id, verifier: alias.verifier, until: alias.expiry };
    return out;
  }

  async commit(id: string, delta: SessionDelta, options?: CommitOptions): Promise<number> {
    return this.commitNow(id, delta, options);
  }

  /** `commit`, answered at once (see `SyncLane`). */
  commitNow(id: string, delta: SessionDelta, options?: CommitOptions, now = Date.now()): number {
    this.assertOpen();
    const entry = this.live(id, now);
    if (!entry) throw ended();
    const record = entry.record;
    if (options?.ifVersion !== undefined && options.ifVersion !== record.version) throw conflict();
    const { set, unset, meta } = delta;
    if (set) for (const key of Object.keys(set)) setOwn(record.attributes, key, cloneJson(set[key]!));
    if (unset) for (const key of unset) delete record.attributes[key];
    if (meta) this.applyMetaPatch(entry, meta);
    record.version++;
    this.use(entry);
    return record.version;
  }

  async rename(oldId: string, newRecord: SessionRecord, options: RenameOptions): Promise<number> {
    this.assertOpen();
    const now = Date.now();
    const old = this.live(oldId, now);
    if (!old) throw ended();
    if (options.ifVersion !== undefined && options.ifVersion !== old.record.version) throw conflict();
    if (newRecord.id === oldId || this.live(newRecord.id, now) || this.liveAlias(newRecord.id, now)) {
      throw duplicate();
    }
    const record = copyRecord(newRecord);
    record.version = old.record.version + 1;
    this.drop(old);
    this.add(new RecordEntry(record));
    if (options.graceMs > 0) {
      this.addAlias(new AliasEntry(oldId, record.id, old.record.verifier, now + options.graceMs));
    }
    return record.version;
  }

  async consume(id: string, check: (record: SessionRecord) => boolean): Promise<SessionRecord | undefined> {
    this.assertOpen();
    const entry = this.live(id, Date.now());
    // check runs synchronously on a copy, so nothing can change the record between check and removal.
    if (!entry || !check(copyRecord(entry.record))) return undefined;
    this.drop(entry);
    return entry.record;
  }

  async delete(id: string): Promise<boolean> {
    this.assertOpen();
    const entry = this.records.get(id);
    if (!entry) return false;
    this.drop(entry);
    return entry.expiry > Date.now();
  }

  async touch(id: string, idleExpiresAt: number): Promise<void> {
    this.touchNow(id, idleExpiresAt);
  }

  /** `touch`, answered at once (see `SyncLane`). */
  touchNow(id: string, idleExpiresAt: number, now = Date.now()): void {
    this.assertOpen();
    const entry = this.live(id, now);
    if (!entry) return;
    entry.record.idleExpiresAt = idleExpiresAt;
    this.heap.update(entry, expiryOf(entry.record));
    this.use(entry);
  }

  async listByUser(userId: string): Promise<SessionRecord[]> {
    this.assertOpen();
    const ids = this.users.get(userId);
    if (!ids) return [];
    const now = Date.now();
    const out: SessionRecord[] = [];
    for (const id of [...ids]) {
      const entry = this.live(id, now);
      if (entry) out.push(copyRecord(entry.record));
    }
    return out;
  }

  async deleteByUser(userId: string, options: { exceptId?: string } = {}): Promise<string[]> {
    this.assertOpen();
    const ids = this.users.get(userId);
    if (!ids) return [];
    const now = Date.now();
    const removed: string[] = [];
    for (const id of [...ids]) {
      const entry = this.records.get(id);
      if (id === options.exceptId || !entry) continue;
      this.drop(entry);
      if (entry.expiry > now) removed.push(id);
    }
    return removed;
  }

  async sweep(now: number): Promise<number> {
    this.assertOpen();
    let removed = this.expireBatch(now);
    while (this.isDue(now) && !this.closed) {
      await yieldToEventLoop();
      removed += this.expireBatch(now);
    }
    return removed;
  }

  async lock(id: string, leaseMs: number): Promise<StoreLock | null> {
    this.assertOpen();
    const now = Date.now();
    const held = this.locks.get(id);
    if (held && held.expiry > now) return null;
    if (held) this.dropLock(held);
    const entry = new LockEntry(id, ++this.fence, now + leaseMs);
    this.locks.set(id, entry);
    this.heap.push(entry);
    return {
      fence: entry.fence,
      release: async () => {
        if (this.locks.get(id) === entry) this.dropLock(entry);
      },
    };
  }

  async *scan(options: ScanOptions = {}): AsyncIterable<SessionRecord[]> {
    this.assertOpen();
    const batch = scanBatch(options);
    let page: SessionRecord[] = [];
    for (const entry of this.records.values()) {
      if (entry.expiry <= Date.now()) continue;
      page.push(copyRecord(entry.record));
      if (page.length >= batch) {
        yield page;
        page = [];
        this.assertOpen();
      }
    }
    if (page.length > 0) yield page;
  }

  async outboxAppend(id: string, messages: string[], limits: OutboxLimits): Promise<number> {
    this.assertOpen();
    const entry = this.live(id, Date.now());
    if (!entry) throw ended();
    entry.outbox ??= new Outbox();
    return entry.outbox.append(messages, limits);
  }

  async outboxRead(id: string, after: number, limit?: number): Promise<OutboxPage> {
    this.assertOpen();
    const outbox = this.live(id, Date.now())?.outbox;
    return outbox ? outbox.read(after, limit) : { messages: [], last: 0, droppedThrough: 0 };
  }

  async outboxTrim(id: string, through: number): Promise<void> {
    this.assertOpen();
    this.live(id, Date.now())?.outbox?.trim(through);
  }

  async publish(event: StoreEvent): Promise<void> {
    this.assertOpen();
    const snapshot = copyEvent(event);
    // Delivered later, as a networked store would, to the listeners there are then.
    queueMicrotask(() => this.listeners.deliver(() => copyEvent(snapshot)));
  }

  async subscribe(listener: StoreEventListener): Promise<() => Promise<void>> {
    this.assertOpen();
    const remove = this.listeners.add(listener);
    return async () => remove();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.listeners.clear();
    this.records.clear();
    this.aliases.clear();
    this.locks.clear();
    this.users.clear();
    this.heap.clear();
    this.lru?.clear();
  }

  private assertOpen(): void {
    if (this.closed) throw closed("MemoryStore");
  }

  /** The record entry if it exists and has not expired; an expired one is removed on the way. */
  private live(id: string, now: number): RecordEntry | undefined {
    const entry = this.records.get(id);
    if (entry === undefined) return undefined;
    if (entry.expiry > now) return entry;
    this.drop(entry);
    return undefined;
  }

  private liveAlias(id: string, now: number): AliasEntry | undefined {
    const alias = this.aliases.get(id);
    if (alias === undefined) return undefined;
    if (alias.expiry > now) return alias;
    this.dropAlias(alias);
    return undefined;
  }

  private use(entry: RecordEntry): void {
    this.lru?.touch(entry);
  }

  private add(entry: RecordEntry): void {
    const { id, userId } = entry.record;
    this.records.set(id, entry);
    this.heap.push(entry);
    if (userId !== undefined) this.index(userId, id);
    if (!this.lru) return;
    this.lru.add(entry);
    while (this.records.size > this.maxEntries) {
      const oldest = this.lru.leastRecent;
      if (oldest === undefined) break;
      // Unlinked first, so even an entry the maps no longer hold can never stall this loop.
      this.lru.remove(oldest);
      this.drop(oldest);
    }
  }

  private drop(entry: RecordEntry): void {
    const { id, userId } = entry.record;
    this.heap.remove(entry);
    if (this.records.get(id) === entry) {
      this.records.delete(id);
      this.lru?.remove(entry);
    }
    if (userId !== undefined) this.unindex(userId, id);
  }

  private addAlias(alias: AliasEntry): void {
    const prior = this.aliases.get(alias.from);
    if (prior) this.heap.remove(prior);
    this.aliases.set(alias.from, alias);
    this.heap.push(alias);
  }

  private dropAlias(alias: AliasEntry): void {
    this.heap.remove(alias);
    if (this.aliases.get(alias.from) === alias) this.aliases.delete(alias.from);
  }

  private dropLock(lock: LockEntry): void {
    this.heap.remove(lock);
    if (this.locks.get(lock.id) === lock) this.locks.delete(lock.id);
  }

  private applyMetaPatch(entry: RecordEntry, meta: MetaPatch): void {
    const record = entry.record;
    if (onlyIdle(meta)) {
      // The patch nearly every commit carries: the idle refresh alone.
      record.idleExpiresAt = meta.idleExpiresAt!;
      this.heap.update(entry, expiryOf(record));
      return;
    }
    const userBefore = record.userId;
    applyMeta(record, copyMeta(meta));
    if (record.userId !== userBefore) {
      if (userBefore !== undefined) this.unindex(userBefore, record.id);
      if (record.userId !== undefined) this.index(record.userId, record.id);
    }
    this.heap.update(entry, expiryOf(record));
  }

  private index(userId: string, id: string): void {
    const ids = this.users.get(userId);
    if (ids) ids.add(id);
    else this.users.set(userId, new Set([id]));
  }

  private unindex(userId: string, id: string): void {
    const ids = this.users.get(userId);
    if (!ids) return;
    ids.delete(id);
    if (ids.size === 0) this.users.delete(userId);
  }

  private isDue(now: number): boolean {
    const next = this.heap.peek();
    return next !== undefined && next.expiry <= now;
  }

  /** Removes what expired at or before `now`, for at most one batch budget; returns records removed. */
  private expireBatch(now: number): number {
    const deadline = performance.now() + BATCH_BUDGET_MS;
    let removed = 0;
    for (let n = 1; this.isDue(now); n++) {
      const entry = this.heap.pop()!;
      if (entry instanceof RecordEntry) {
        this.drop(entry);
        removed++;
      } else if (entry instanceof AliasEntry) {
        this.dropAlias(entry);
      } else {
        this.dropLock(entry);
      }
      if (n % CHECK_EVERY === 0 && performance.now() >= deadline) break;
    }
    return removed;
  }

  private expireInBackground(): void {
    if (this.expiring || this.closed || !this.isDue(Date.now())) return;
    this.expiring = true;
    const step = (): void => {
      if (this.closed) {
        this.expiring = false;
        return;
      }
      const now = Date.now();
      this.expireBatch(now);
      if (this.isDue(now)) setImmediate(step);
      else this.expiring = false;
    };
    step();
  }
}

function copyEvent(event: StoreEvent): StoreEvent {
  const out: StoreEvent = { type: event.type, id: event.id, at: event.at };
  if (event.userId !== undefined) out.userId = event.userId;
  if (event.connection) out.connection = { ...event.connection };
  if (event.origin !== undefined) out.origin = event.origin;
  return out;
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** True when a meta patch moves the idle expiry and nothing else. */
/** The stored record itself, for `peek`: the store never changes an attribute value in place. */
function lend(record: SessionRecord): SessionRecord {
  return record;
}

function onlyIdle(meta: MetaPatch): boolean {
  for (const key in meta) {
    if (key !== "idleExpiresAt" && meta[key as keyof MetaPatch] !== undefined) return false;
  }
  return meta.idleExpiresAt !== undefined;
}
