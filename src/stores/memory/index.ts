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
import { pack, packedUser, unpack } from "./pack.js";
import { ShardedMap } from "./shards.js";

/** Options for `MemoryStore`. */
export interface MemoryStoreOptions {
  /** Most records kept; past it the least recently used one is evicted. @default Infinity */
  maxEntries?: number;
  /** How often the background timer removes expired records and packs idle ones, in ms. @default 1000 */
  sweepIntervalMs?: number;
}

// One batch of expiry work runs at most this long before yielding to the event loop, and the clock is
// read once per CHECK_EVERY removals so that reading it stays cheap.
const BATCH_BUDGET_MS = 4;
const CHECK_EVERY = 64;

// Three fields and nothing else: at a million sessions every field is 8 MB (bench: heap per session).
// Its expiry is kept by the heap.
class RecordEntry implements Expiring {
  heapIndex = -1;
  constructor(
    readonly id: string,
    /** The record as an object while it is in use; its packed text (pack.ts) while it is idle. */
    public body: SessionRecord | string,
  ) {}
}

/** The entry of a store bounded by maxEntries, which also sits in the use-order list. */
class ListedEntry extends RecordEntry implements LruNode {
  newer: LruNode | undefined = undefined;
  older: LruNode | undefined = undefined;
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
 * and out so callers never share objects with the store. An unref'd timer removes expired records in
 * time-bounded batches, so even a million records expiring together never stall the event loop, and
 * packs records nobody used for a sweep interval or two into one string each (pack.ts).
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
  /** Use order, kept only when maxEntries bounds the store (then every entry is a ListedEntry). */
  private readonly lru: LruList<ListedEntry> | undefined;
  /** Outboxes by record id, made on the first append; one goes when its record goes. */
  private readonly outboxes = new Map<string, Outbox>();
  /** Entries unpacked since the last timer tick, and those unpacked in the tick before: packed next. */
  private thawed: RecordEntry[] = [];
  private cooling: RecordEntry[] = [];
  private readonly timer: NodeJS.Timeout;
  private fence = 0;
  private expiring = false;
  private packing = false;
  private closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    const check = new OptionChecker("MemoryStore", options, ["maxEntries", "sweepIntervalMs"]);
    const maxEntries = check.count("maxEntries", Number.POSITIVE_INFINITY, { infinite: true });
    const sweepIntervalMs = check.ms("sweepIntervalMs", 1000);
    this.maxEntries = maxEntries;
    this.lru = Number.isFinite(maxEntries) ? new LruList<ListedEntry>() : undefined;
    this.timer = setInterval(() => {
      this.expireInBackground();
      this.packInBackground();
      // Memory of removals is given back between expiry runs, never inside one (see ExpiryHeap.compact).
      if (!this.expiring) this.heap.compact();
    }, sweepIntervalMs);
    this.timer.unref();
  }

  /** Number of records held, including expired ones the timer has not removed yet. */
  get size(): number {
    return this.records.size;
  }

  async insert(record: SessionRecord): Promise<void> {
    this.assertNew(record.id);
    this.add(record, pack(record));
  }

  /** `insert` with attribute values given as JSON text, spliced into the packed record as they are. */
  async insertEncoded(record: SessionRecord, encoded: Record<string, string>): Promise<void> {
    this.assertNew(record.id);
    this.add(record, pack(record, encoded));
  }

  /** DUPLICATE_ID when `id` (or a live alias of it) is taken. */
  private assertNew(id: string): void {
    this.assertOpen();
    const now = Date.now();
    if (this.live(id, now) || this.liveAlias(id, now)) throw duplicate();
  }

  async get(id: string): Promise<StoredRecord | undefined> {
    return this.find(id, false);
  }

  /** Like `get`, lending the stored record instead of copying it: the load path's fast lane (see the store contract). */
  async peek(id: string): Promise<StoredRecord | undefined> {
    return this.find(id, true);
  }

  /** `peek`, answered at once (see `SyncLane`). */
  peekNow(id: string, now = Date.now()): StoredRecord | undefined {
    return this.find(id, true, now);
  }

  private find(id: string, lending: boolean, now = Date.now()): StoredRecord | undefined {
    this.assertOpen();
    const entry = this.live(id, now);
    if (entry) {
      this.use(entry);
      return lending ? this.thaw(entry) : this.copyOf(entry);
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
    const out: StoredRecord = lending ? borrowRecord(this.thaw(target)) : this.copyOf(target);
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
    const record = this.thaw(entry);
    if (options?.ifVersion !== undefined && options.ifVersion !== record.version) throw conflict();
    const { set, unset, meta } = delta;
    if (set) for (const key of Object.keys(set)) setOwn(record.attributes, key, cloneJson(set[key]!));
    if (unset) for (const key of unset) delete record.attributes[key];
    if (meta) this.applyMetaPatch(entry, record, meta);
    record.version++;
    this.use(entry);
    return record.version;
  }

  async rename(oldId: string, newRecord: SessionRecord, options: RenameOptions): Promise<number> {
    this.assertOpen();
    const now = Date.now();
    const old = this.live(oldId, now);
    if (!old) throw ended();
    const { version, verifier } = this.recordOf(old);
    if (options.ifVersion !== undefined && options.ifVersion !== version) throw conflict();
    if (newRecord.id === oldId || this.live(newRecord.id, now) || this.liveAlias(newRecord.id, now)) {
      throw duplicate();
    }
    const record = { ...newRecord, version: version + 1 };
    this.drop(old);
    this.add(record, pack(record));
    if (options.graceMs > 0) {
      this.addAlias(new AliasEntry(oldId, record.id, verifier, now + options.graceMs));
    }
    return record.version;
  }

  async consume(id: string, check: (record: SessionRecord) => boolean): Promise<SessionRecord | undefined> {
    this.assertOpen();
    const entry = this.live(id, Date.now());
    // check runs synchronously on a copy, so nothing can change the record between check and removal.
    if (!entry || !check(this.copyOf(entry))) return undefined;
    this.drop(entry);
    return this.recordOf(entry);
  }

  async delete(id: string): Promise<boolean> {
    this.assertOpen();
    const entry = this.records.get(id);
    if (!entry) return false;
    const live = this.heap.expiryOf(entry) > Date.now();
    this.drop(entry);
    return live;
  }

  async touch(id: string, idleExpiresAt: number): Promise<void> {
    this.touchNow(id, idleExpiresAt);
  }

  /** `touch`, answered at once (see `SyncLane`). */
  touchNow(id: string, idleExpiresAt: number, now = Date.now()): void {
    this.assertOpen();
    const entry = this.live(id, now);
    if (!entry) return;
    // A packed record stays packed: a touch alone is not a sign that it is about to be read.
    const record = this.recordOf(entry);
    record.idleExpiresAt = idleExpiresAt;
    if (record !== entry.body) entry.body = pack(record);
    this.heap.update(entry, expiryOf(record));
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
      if (entry) out.push(this.copyOf(entry));
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
      if (this.heap.expiryOf(entry) > now) removed.push(id);
      this.drop(entry);
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
    if (!this.closed) this.heap.compact();
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
    this.heap.push(entry, entry.expiry);
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
      if (this.heap.expiryOf(entry) <= Date.now()) continue;
      page.push(this.copyOf(entry));
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
    let outbox = this.outboxes.get(id);
    if (outbox === undefined) {
      outbox = new Outbox();
      this.outboxes.set(id, outbox);
    }
    return outbox.append(messages, limits);
  }

  async outboxRead(id: string, after: number, limit?: number): Promise<OutboxPage> {
    this.assertOpen();
    const outbox = this.live(id, Date.now()) && this.outboxes.get(id);
    return outbox ? outbox.read(after, limit) : { messages: [], last: 0, droppedThrough: 0 };
  }

  async outboxTrim(id: string, through: number): Promise<void> {
    this.assertOpen();
    if (this.live(id, Date.now())) this.outboxes.get(id)?.trim(through);
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
    this.outboxes.clear();
    this.heap.clear();
    this.lru?.clear();
    this.thawed = [];
    this.cooling = [];
  }

  private assertOpen(): void {
    if (this.closed) throw closed("MemoryStore");
  }

  /** The record entry if it exists and has not expired; an expired one is removed on the way. */
  private live(id: string, now: number): RecordEntry | undefined {
    const entry = this.records.get(id);
    if (entry === undefined) return undefined;
    if (this.heap.expiryOf(entry) > now) return entry;
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
    this.lru?.touch(entry as ListedEntry);
  }

  /** The entry's record as an object, kept so (until a packing pass or two) if it was packed. */
  private thaw(entry: RecordEntry): SessionRecord {
    const body = entry.body;
    // Fast path: a record in use is an object already.
    if (typeof body !== "string") return body;
    const record = unpack(entry.id, body);
    entry.body = record;
    this.thawed.push(entry);
    return record;
  }

  /** The entry's record as an object, without keeping it unpacked: for one that is about to go. */
  private recordOf(entry: RecordEntry): SessionRecord {
    const body = entry.body;
    return typeof body === "string" ? unpack(entry.id, body) : body;
  }

  /** A copy of the entry's record that the caller may keep: a packed one unpacks into new objects. */
  private copyOf(entry: RecordEntry): SessionRecord {
    const body = entry.body;
    return typeof body === "string" ? unpack(entry.id, body) : copyRecord(body);
  }

  /**
   * Stores a record as its packed text (a new one is usually not read again in this process before the
   * next request).
   */
  private add(record: SessionRecord, packed: string): void {
    const id = record.id;
    const entry = this.lru ? new ListedEntry(id, packed) : new RecordEntry(id, packed);
    this.records.set(id, entry);
    this.heap.push(entry, expiryOf(record));
    if (record.userId !== undefined) this.index(record.userId, id);
    if (!this.lru) return;
    this.lru.add(entry as ListedEntry);
    while (this.records.size > this.maxEntries) {
      const oldest = this.lru.leastRecent;
      if (oldest === undefined) break;
      // Unlinked first, so even an entry the maps no longer hold can never stall this loop.
      this.lru.remove(oldest);
      this.drop(oldest);
    }
  }

  private drop(entry: RecordEntry): void {
    const id = entry.id;
    this.heap.remove(entry);
    if (this.records.get(id) === entry) {
      this.records.delete(id);
      this.lru?.remove(entry as ListedEntry);
      if (this.outboxes.size > 0) this.outboxes.delete(id);
    }
    // A packed record is parsed for its user only when some record has one.
    if (this.users.size === 0) return;
    const body = entry.body;
    const userId = typeof body === "string" ? packedUser(body) : body.userId;
    if (userId !== undefined) this.unindex(userId, id);
  }

  private addAlias(alias: AliasEntry): void {
    const prior = this.aliases.get(alias.from);
    if (prior) this.heap.remove(prior);
    this.aliases.set(alias.from, alias);
    this.heap.push(alias, alias.expiry);
  }

  private dropAlias(alias: AliasEntry): void {
    this.heap.remove(alias);
    if (this.aliases.get(alias.from) === alias) this.aliases.delete(alias.from);
  }

  private dropLock(lock: LockEntry): void {
    this.heap.remove(lock);
    if (this.locks.get(lock.id) === lock) this.locks.delete(lock.id);
  }

  private applyMetaPatch(entry: RecordEntry, record: SessionRecord, meta: MetaPatch): void {
    if (onlyIdle(meta)) {
      // The patch nearly every commit carries: the idle refresh alone.
      record.idleExpiresAt = meta.idleExpiresAt!;
      this.heap.update(entry, expiryOf(record));
      return;
    }
    const userBefore = record.userId;
    applyMeta(record, copyMeta(meta));
    if (record.userId !== userBefore) {
      if (userBefore !== undefined) this.unindex(userBefore, entry.id);
      if (record.userId !== undefined) this.index(record.userId, entry.id);
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

  /** True when the heap's first place has come round: an entry expired, or one re-timed later to move. */
  private isDue(now: number): boolean {
    return this.heap.first() <= now;
  }

  /**
   * Removes what expired at or before `now`, for at most one batch budget; returns records removed.
   * Entries re-timed later since they were placed are moved to their place on the way, in the same budget.
   */
  private expireBatch(now: number): number {
    const deadline = performance.now() + BATCH_BUDGET_MS;
    let removed = 0;
    for (let n = 1; this.isDue(now); n++) {
      if (!this.heap.settleFirst()) removed += this.expire(this.heap.pop()!);
      if (n % CHECK_EVERY === 0 && performance.now() >= deadline) break;
    }
    return removed;
  }

  /** Removes an entry whose time has come; 1 when it was a record, 0 for an alias or a lock. */
  private expire(entry: Entry): number {
    if (entry instanceof RecordEntry) {
      this.drop(entry);
      return 1;
    }
    if (entry instanceof AliasEntry) this.dropAlias(entry);
    else this.dropLock(entry);
    return 0;
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
      if (this.isDue(now)) {
        setImmediate(step);
        return;
      }
      this.expiring = false;
      this.heap.compact();
    };
    step();
  }

  /**
   * Packs the records unpacked two ticks ago, in batches of at most one budget: a record in use stays an
   * object for one to two sweep intervals after its first read, then costs one parse on its next.
   */
  private packInBackground(): void {
    if (this.packing || this.closed) return;
    const batch = this.cooling;
    this.cooling = this.thawed;
    this.thawed = [];
    if (batch.length === 0) return;
    this.packing = true;
    let next = 0;
    const step = (): void => {
      const deadline = performance.now() + BATCH_BUDGET_MS;
      while (next < batch.length && !this.closed) {
        const entry = batch[next++]!;
        const body = entry.body;
        if (typeof body !== "string" && this.records.get(entry.id) === entry) entry.body = pack(body);
        if (next % CHECK_EVERY === 0 && performance.now() >= deadline) {
          setImmediate(step);
          return;
        }
      }
      this.packing = false;
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
function onlyIdle(meta: MetaPatch): boolean {
  for (const key in meta) {
    if (key !== "idleExpiresAt" && meta[key as keyof MetaPatch] !== undefined) return false;
  }
  return meta.idleExpiresAt !== undefined;
}
