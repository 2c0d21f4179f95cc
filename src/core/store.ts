import type { Attributes, ConnectionRef, MetaPatch, SessionRecord } from "./record.js";

/** A per-key change to one record: attributes to set, attributes to remove, meta fields to change. */
export interface SessionDelta {
  /** Attributes to set (each key replaces that key only). */
  set?: Attributes;
  /** Attribute keys to remove. */
  unset?: string[];
  /** Meta fields to change. */
  meta?: MetaPatch;
}

/** Options for `commit`. */
export interface CommitOptions {
  /** Apply only if the stored version equals this; otherwise VERSION_CONFLICT. */
  ifVersion?: number;
}

/** Options for `rename`. */
export interface RenameOptions {
  /** How long the old id keeps resolving to the new record; 0 removes it at once. */
  graceMs: number;
  /** Rename only if the stored version of the old id equals this; otherwise VERSION_CONFLICT. */
  ifVersion?: number;
}

/** How `get` reached a record through a rotation alias. */
export interface AliasHit {
  /** The old id that was asked for. */
  from: string;
  /** The verifier the old id had, so the caller can check the old token's secret. */
  verifier: string;
  /** When the alias stops resolving (store clock, ms since the epoch). */
  until: number;
}

/** A record as `get` returns it; `via` is set when the id asked for was a rotation alias. */
export type StoredRecord = SessionRecord & { via?: AliasHit };

/**
 * What `peek` returns: a stored record that may be lent, for reading only. The record, its `attributes`
 * object and each value in it may be the store's own (copy before changing any); a key in `encoded` holds
 * the attribute's JSON text, parsed only when read, and is not in `attributes`.
 */
export type PeekedRecord = StoredRecord & { encoded?: Record<string, string> };

/** An exclusive lease on one id across processes. */
export interface StoreLock {
  /** Strictly increasing per id: a holder with a lower fence has lost its lease. */
  fence: number;
  /** Frees the lease if this holder still has it. Safe to call twice. */
  release(): Promise<void>;
}

/** Bounds of one session's outbox: past either, the oldest messages are dropped. */
export interface OutboxLimits {
  /** Most messages kept. */
  maxMessages: number;
  /** Most bytes kept (UTF-8 length of the messages' text). */
  maxBytes: number;
}

/** One message kept in an outbox. */
export interface OutboxMessage {
  /** Sequence number: 1 for a session's first message, +1 for each one after. */
  seq: number;
  /** The message's text, exactly as appended. */
  data: string;
}

/** What `outboxRead` returns. */
export interface OutboxPage {
  /** The kept messages after the sequence number asked for, oldest first, numbers consecutive. */
  messages: OutboxMessage[];
  /** The highest sequence number ever appended to this outbox; 0 when none. */
  last: number;
  /** The highest sequence number the bounds dropped (not `outboxTrim`); 0 when none. */
  droppedThrough: number;
}

/** Options for `scan`. */
export interface ScanOptions {
  /** About how many records each page holds. @default 500 */
  batch?: number;
}

/** Cross-process notice. */
export interface StoreEvent {
  /**
   * What happened: a session `ended` or was `revoked`, a connection was `replaced` by a resume elsewhere,
   * or a session's `outbox` has new messages for the process that holds its connection.
   */
  type: "ended" | "replaced" | "revoked" | "outbox";
  /** Session id concerned. */
  id: string;
  /** User of that session, when known. */
  userId?: string;
  /** Connection that must close (for `replaced`). */
  connection?: ConnectionRef;
  /** When it happened (ms since the epoch). */
  at: number;
  /** Opaque id of the process that published it, so a publisher can skip its own events. */
  origin?: string;
}

/** Listener for store events. */
export type StoreEventListener = (event: StoreEvent) => void;

/**
 * The synchronous lane an in-process store may offer: `peekNow`, `commitNow` and `touchNow` do what
 * `peek`, `commit` and `touch` do, with the same errors thrown instead of rejected. The manager then
 * loads and commits a session without waiting a turn of the event loop, so an HTTP response that needs
 * only that goes out at once. A store offers all three or none. `now`, when given, is the wall-clock
 * time the caller has just read (Date.now()); a store that reads the wall clock uses it instead of
 * reading it again, and one with a clock of its own ignores it.
 */
export type SyncLane = Required<Pick<SessionStore, "peekNow" | "commitNow" | "touchNow">>;

/**
 * The contract every store implements and `test/conformance` checks.
 * Errors are StowageError: DUPLICATE_ID, VERSION_CONFLICT, SESSION_ENDED (no such id), STORE_UNAVAILABLE.
 * Records passed in and returned are copies: callers never share objects with the store (`peek` aside).
 */
export interface SessionStore {
  /** Store name for diagnostics (`memory`, `sqlite`, `redis`, `postgres`). */
  readonly name: string;
  /** Inserts a new record; DUPLICATE_ID when the id (or a live alias of it) exists. */
  insert(record: SessionRecord): Promise<void>;
  /**
   * Optional fast lane for inserting: `insert` of the record whose attributes are `record.attributes`
   * plus the ones in `encoded`, given as their JSON text (a new session serialized each value when it was
   * set), so a store that keeps JSON does not serialize them again. A key is in one of the two, never both.
   */
  insertEncoded?(record: SessionRecord, encoded: Record<string, string>): Promise<void>;
  /** The record, or undefined; follows a rotation alias inside its grace window (see `StoredRecord.via`). */
  get(id: string): Promise<StoredRecord | undefined>;
  /**
   * Optional fast lane for loading: like `get`, but attributes may be lent (see `PeekedRecord`): values
   * shared with the store, or JSON text left unparsed. A request usually reads one or two small values of
   * a session, so a store whose `get` must deep-copy or parse every value offers this.
   */
  peek?(id: string): Promise<PeekedRecord | undefined>;
  /** Optional synchronous lane of a store that lives in this process (see `SyncLane`). */
  peekNow?(id: string, now?: number): PeekedRecord | undefined;
  /** Optional synchronous lane of a store that lives in this process (see `SyncLane`). */
  commitNow?(id: string, delta: SessionDelta, options?: CommitOptions, now?: number): number;
  /** Optional synchronous lane of a store that lives in this process (see `SyncLane`). */
  touchNow?(id: string, idleExpiresAt: number, now?: number): void;
  /** Applies a delta atomically and returns the new version; SESSION_ENDED if the id does not exist. */
  commit(id: string, delta: SessionDelta, options?: CommitOptions): Promise<number>;
  /**
   * Atomically replaces `oldId` by `newRecord` (stored with version old+1, which is returned); the old id
   * is then gone, or an alias for `graceMs`. SESSION_ENDED if `oldId` does not exist.
   */
  rename(oldId: string, newRecord: SessionRecord, options: RenameOptions): Promise<number>;
  /** Atomically removes the record if `check(record)` is true and returns it; otherwise leaves it untouched. */
  consume(id: string, check: (record: SessionRecord) => boolean): Promise<SessionRecord | undefined>;
  /** Removes the record (and its user-index entry); true if it existed. */
  delete(id: string): Promise<boolean>;
  /** Moves the idle expiry without bumping the version; no-op for an unknown id. */
  touch(id: string, idleExpiresAt: number): Promise<void>;
  /** Live records of one user. */
  listByUser(userId: string): Promise<SessionRecord[]>;
  /** Removes every record of one user except `exceptId`; returns the removed ids. */
  deleteByUser(userId: string, options?: { exceptId?: string }): Promise<string[]>;
  /**
   * Every live record of the store (signed in or not; rotation aliases left out), page by page, so a
   * store of millions is listed without holding them all. A record present for the whole scan is listed
   * at least once; one added, changed or removed meanwhile may or may not be. For operators and tools
   * (the CLI's `list`), not for request paths.
   */
  scan(options?: ScanOptions): AsyncIterable<SessionRecord[]>;
  /** Removes records whose expiry is at or before `now`; returns how many. Stores with native TTL may return 0. */
  sweep(now: number): Promise<number>;
  /** An exclusive lease on `id` for `leaseMs`, or null when someone else holds it. */
  lock(id: string, leaseMs: number): Promise<StoreLock | null>;
  /**
   * Appends messages to a session's outbox, numbered on from the last one, and drops the oldest past
   * `limits`; resolves the sequence number of the last message appended. SESSION_ENDED when the session
   * does not exist. The outbox belongs to the record: it goes when the record is deleted, consumed,
   * renamed or expires.
   */
  outboxAppend(id: string, messages: string[], limits: OutboxLimits): Promise<number>;
  /** The outbox's messages after `after` (at most `limit` of them); an unknown session reads as empty. */
  outboxRead(id: string, after: number, limit?: number): Promise<OutboxPage>;
  /** Removes the outbox's messages up to and including `through`. No-op for an unknown session. */
  outboxTrim(id: string, through: number): Promise<void>;
  /** Sends an event to every subscriber, in this process and (for shared stores) in others. */
  publish(event: StoreEvent): Promise<void>;
  /** Listens for events; resolves to an unsubscribe function. */
  subscribe(listener: StoreEventListener): Promise<() => Promise<void>>;
  /** Frees connections, timers and handles. */
  close(): Promise<void>;
}
