import { randomBytes } from "node:crypto";
import { mkdirSync, statSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { StowageError } from "../../core/errors.js";
import { OptionChecker } from "../../core/options.js";
import type { SessionRecord } from "../../core/record.js";
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
import { closed, conflict, duplicate, ended, unavailable } from "../shared/errors.js";
import { EventFanout } from "../shared/events.js";
import { scanBatch } from "../shared/scan.js";
import {
  applyMetaToRow,
  mergeAttributes,
  recordToParams,
  rowToRecord,
  SESSION_COLUMNS,
  type SessionRow,
} from "./codec.js";
import { migrate } from "./migrations.js";

/** Options for {@link SqliteStore}. */
export interface SqliteStoreOptions {
  /** Database file; its folder is created when missing. `:memory:` gives a private, throwaway database. */
  path: string;
  /** How long a write waits for another connection's lock before failing with STORE_UNAVAILABLE. @default 5000 */
  busyTimeoutMs?: number;
  /** Period of the background sweep of expired records, sessions and leases; 0 disables it. @default 60000 */
  sweepIntervalMs?: number;
  /** Rows deleted per sweep transaction, so a sweep never holds the write lock for long. @default 500 */
  sweepBatch?: number;
  /** How often a subscribed store polls for events published by other connections to the file. @default 250 */
  eventPollMs?: number;
}

// Published events stay this long for pollers in other processes to pick up, then publish prunes them.
const EVENT_RETENTION_MS = 60_000;
const EVENT_POLL_LIMIT = 1000;

type IdNow = { id: string; now: number };
type AliasedRow = SessionRow & {
  via_from: string | null;
  via_verifier: string | null;
  via_until: number | null;
};

function prepareStatements(db: Database.Database) {
  const cols = SESSION_COLUMNS.split(", ");
  const params = cols.map((col) => `@${col}`).join(", ");
  const fromS = cols.map((col) => `s.${col} AS ${col}`).join(", ");
  return {
    // One statement, so the alias and the record it points to are read from one snapshot.
    get: db.prepare<IdNow, AliasedRow>(
      `SELECT ${fromS}, NULL AS via_from, NULL AS via_verifier, NULL AS via_until
         FROM stowage_sessions s WHERE s.id = @id AND s.expiry > @now
       UNION ALL
       SELECT ${fromS}, a.old_id, a.verifier, a.until
         FROM stowage_aliases a JOIN stowage_sessions s ON s.id = a.new_id
        WHERE a.old_id = @id AND a.until > @now AND s.expiry > @now
       LIMIT 1`,
    ),
    live: db.prepare<IdNow, SessionRow>(
      `SELECT ${SESSION_COLUMNS} FROM stowage_sessions WHERE id = @id AND expiry > @now`,
    ),
    exists: db.prepare<[string], number>("SELECT 1 FROM stowage_sessions WHERE id = ?").pluck(),
    liveAlias: db
      .prepare<IdNow, number>("SELECT 1 FROM stowage_aliases WHERE old_id = @id AND until > @now")
      .pluck(),
    deleteExpired: db.prepare<IdNow>("DELETE FROM stowage_sessions WHERE id = @id AND expiry <= @now"),
    insert: db.prepare<SessionRow>(`INSERT INTO stowage_sessions (${SESSION_COLUMNS}) VALUES (${params})`),
    update: db.prepare<SessionRow>(
      `UPDATE stowage_sessions SET version = @version, expires_at = @expires_at,
         idle_expires_at = @idle_expires_at, user_id = @user_id, level = @level, login_type = @login_type,
         last_login_at = @last_login_at, language = @language, attributes = @attributes, channel = @channel,
         connection = @connection
       WHERE id = @id`,
    ),
    touch: db.prepare<IdNow & { idle: number }>(
      "UPDATE stowage_sessions SET idle_expires_at = @idle WHERE id = @id AND expiry > @now",
    ),
    delete: db.prepare<[string]>("DELETE FROM stowage_sessions WHERE id = ?"),
    // Keyset pages in id order, through the primary key: each page costs O(page), never an offset scan.
    scanPage: db.prepare<{ after: string; now: number; limit: number }, SessionRow>(
      `SELECT ${SESSION_COLUMNS} FROM stowage_sessions WHERE id > @after AND expiry > @now ORDER BY id LIMIT @limit`,
    ),
    byUser: db.prepare<{ user: string; now: number }, SessionRow>(
      `SELECT ${SESSION_COLUMNS} FROM stowage_sessions WHERE user_id = @user AND expiry > @now ORDER BY created_at`,
    ),
    deleteByUser: db
      .prepare<{ user: string; except: string | null }, string>(
        "DELETE FROM stowage_sessions WHERE user_id = @user AND id IS NOT @except RETURNING id",
      )
      .pluck(),
    putAlias: db.prepare<{ old_id: string; new_id: string; verifier: string; until: number }>(
      "INSERT OR REPLACE INTO stowage_aliases (old_id, new_id, verifier, until) VALUES (@old_id, @new_id, @verifier, @until)",
    ),
    repointAliases: db.prepare<{ from: string; to: string }>(
      "UPDATE stowage_aliases SET new_id = @to WHERE new_id = @from",
    ),
    deleteAliasesTo: db.prepare<[string]>("DELETE FROM stowage_aliases WHERE new_id = ?"),
    deleteAlias: db.prepare<[string]>("DELETE FROM stowage_aliases WHERE old_id = ?"),
    lease: db.prepare<[string], number>("SELECT lease_until FROM stowage_locks WHERE id = ?").pluck(),
    nextFence: db
      .prepare<[], number>(
        "UPDATE stowage_counters SET value = value + 1 WHERE name = 'fence' RETURNING value",
      )
      .pluck(),
    putLock: db.prepare<{ id: string; holder: string; fence: number; until: number }>(
      "INSERT OR REPLACE INTO stowage_locks (id, holder, fence, lease_until) VALUES (@id, @holder, @fence, @until)",
    ),
    releaseLock: db.prepare<{ id: string; holder: string }>(
      "DELETE FROM stowage_locks WHERE id = @id AND holder = @holder",
    ),
    insertEvent: db.prepare<{ origin: string; at: number; body: string }>(
      "INSERT INTO stowage_events (origin, at, body) VALUES (@origin, @at, @body)",
    ),
    pruneEvents: db.prepare<[number]>("DELETE FROM stowage_events WHERE at <= ?"),
    lastEvent: db.prepare<[], number>("SELECT coalesce(max(seq), 0) FROM stowage_events").pluck(),
    eventsAfter: db.prepare<[number, number], { seq: number; origin: string; body: string }>(
      "SELECT seq, origin, body FROM stowage_events WHERE seq > ? ORDER BY seq LIMIT ?",
    ),
    outboxHead: db.prepare<[string], OutboxHead>(
      "SELECT last, dropped, count, bytes FROM stowage_outbox_heads WHERE session_id = ?",
    ),
    outboxPutHead: db.prepare<OutboxHead & { id: string }>(
      `INSERT OR REPLACE INTO stowage_outbox_heads (session_id, last, dropped, count, bytes)
       VALUES (@id, @last, @dropped, @count, @bytes)`,
    ),
    outboxInsert: db.prepare<{ id: string; seq: number; data: string; bytes: number }>(
      "INSERT INTO stowage_outbox (session_id, seq, data, bytes) VALUES (@id, @seq, @data, @bytes)",
    ),
    outboxOldest: db.prepare<{ id: string; limit: number }, { seq: number; bytes: number }>(
      "SELECT seq, bytes FROM stowage_outbox WHERE session_id = @id ORDER BY seq LIMIT @limit",
    ),
    outboxThrough: db.prepare<{ id: string; through: number }, { n: number; bytes: number | null }>(
      "SELECT count(*) AS n, sum(bytes) AS bytes FROM stowage_outbox WHERE session_id = @id AND seq <= @through",
    ),
    outboxDelete: db.prepare<{ id: string; through: number }>(
      "DELETE FROM stowage_outbox WHERE session_id = @id AND seq <= @through",
    ),
    outboxAfter: db.prepare<IdNow & { after: number; limit: number }, { seq: number; data: string }>(
      `SELECT o.seq, o.data FROM stowage_outbox o JOIN stowage_sessions s ON s.id = o.session_id
        WHERE o.session_id = @id AND o.seq > @after AND s.expiry > @now ORDER BY o.seq LIMIT @limit`,
    ),
    outboxLiveHead: db.prepare<IdNow, { last: number; dropped: number }>(
      `SELECT h.last, h.dropped FROM stowage_outbox_heads h JOIN stowage_sessions s ON s.id = h.session_id
        WHERE h.session_id = @id AND s.expiry > @now`,
    ),
    // Batches go through the indexes on expiry, until and lease_until: each costs O(batch), not a scan.
    sweepSessions: db.prepare<{ now: number; limit: number }>(
      `DELETE FROM stowage_sessions WHERE rowid IN
         (SELECT rowid FROM stowage_sessions WHERE expiry <= @now LIMIT @limit)`,
    ),
    sweepAliases: db.prepare<{ now: number; limit: number }>(
      `DELETE FROM stowage_aliases WHERE rowid IN
         (SELECT rowid FROM stowage_aliases WHERE until <= @now LIMIT @limit)`,
    ),
    sweepLocks: db.prepare<{ now: number; limit: number }>(
      `DELETE FROM stowage_locks WHERE rowid IN
         (SELECT rowid FROM stowage_locks WHERE lease_until <= @now LIMIT @limit)`,
    ),
  };
}

type Statements = ReturnType<typeof prepareStatements>;

/** The head row of one session's outbox. */
interface OutboxHead {
  last: number;
  dropped: number;
  count: number;
  bytes: number;
}

/** Carries an error thrown by a caller's `consume` check through the transaction, untranslated. */
class CheckError {
  constructor(readonly error: unknown) {}
}

function prepareTransactions(db: Database.Database, s: Statements) {
  // Frees `id` for a new record: refuses a live record or alias, clears a lapsed one still awaiting sweep.
  const claim = (id: string, now: number): void => {
    if (s.liveAlias.get({ id, now }) !== undefined) throw duplicate();
    s.deleteAlias.run(id);
    s.deleteExpired.run({ id, now });
    if (s.exists.get(id) !== undefined) throw duplicate();
  };
  const remove = (id: string): boolean => {
    const existed = s.delete.run(id).changes > 0;
    s.deleteAliasesTo.run(id);
    return existed;
  };
  return {
    insert: db.transaction((record: SessionRecord, now: number, encoded?: Record<string, string>): void => {
      claim(record.id, now);
      s.insert.run(recordToParams(record, record.version, encoded));
    }),
    // Read-modify-write of the whole row under the write lock taken by BEGIN IMMEDIATE: no other
    // connection or process can commit between the read and the write, so no attribute key is lost.
    commit: db.transaction((id: string, delta: SessionDelta, ifVersion: number | undefined, now: number) => {
      const row = s.live.get({ id, now });
      if (row === undefined) throw ended();
      if (ifVersion !== undefined && row.version !== ifVersion) {
        throw conflict();
      }
      if (delta.set !== undefined || (delta.unset !== undefined && delta.unset.length > 0)) {
        row.attributes = mergeAttributes(row.attributes, delta.set, delta.unset);
      }
      if (delta.meta !== undefined) applyMetaToRow(row, delta.meta);
      row.version += 1;
      s.update.run(row);
      return row.version;
    }),
    rename: db.transaction((oldId: string, record: SessionRecord, options: RenameOptions, now: number) => {
      const row = s.live.get({ id: oldId, now });
      if (row === undefined) throw ended();
      if (options.ifVersion !== undefined && row.version !== options.ifVersion) {
        throw conflict();
      }
      s.delete.run(oldId);
      if (record.id !== oldId) claim(record.id, now);
      const version = row.version + 1;
      s.insert.run(recordToParams(record, version));
      if (options.graceMs > 0 && record.id !== oldId) {
        // Older ids still in their own grace window follow the session to its newest id.
        s.repointAliases.run({ from: oldId, to: record.id });
        s.putAlias.run({
          old_id: oldId,
          new_id: record.id,
          verifier: row.verifier,
          until: now + options.graceMs,
        });
      } else {
        // No grace (login, logout): every earlier id must stop resolving, or a fixated token would follow.
        s.deleteAliasesTo.run(oldId);
      }
      return version;
    }),
    consume: db.transaction((id: string, check: (record: SessionRecord) => boolean, now: number) => {
      const row = s.live.get({ id, now });
      if (row === undefined) return undefined;
      let passed: boolean;
      try {
        passed = check(rowToRecord(row));
      } catch (error) {
        throw new CheckError(error);
      }
      if (!passed) return undefined;
      remove(id);
      return rowToRecord(row);
    }),
    delete: db.transaction((id: string): boolean => {
      s.deleteAlias.run(id);
      return remove(id);
    }),
    deleteByUser: db.transaction((userId: string, exceptId: string | null): string[] => {
      const ids = s.deleteByUser.all({ user: userId, except: exceptId });
      for (const id of ids) s.deleteAliasesTo.run(id);
      return ids;
    }),
    outboxAppend: db.transaction((id: string, messages: string[], limits: OutboxLimits, now: number) => {
      if (s.live.get({ id, now }) === undefined) throw ended();
      const head = s.outboxHead.get(id) ?? { last: 0, dropped: 0, count: 0, bytes: 0 };
      for (const data of messages) {
        const bytes = Buffer.byteLength(data);
        s.outboxInsert.run({ id, seq: ++head.last, data, bytes });
        head.count++;
        head.bytes += bytes;
      }
      const over = Math.max(0, head.count - limits.maxMessages);
      if (over > 0 || head.bytes > limits.maxBytes) {
        // The oldest go until both bounds hold: those past the count, then as many as the bytes need.
        let through = 0;
        for (const row of s.outboxOldest.iterate({ id, limit: head.count })) {
          if (head.count <= limits.maxMessages && head.bytes <= limits.maxBytes) break;
          through = row.seq;
          head.count--;
          head.bytes -= row.bytes;
        }
        s.outboxDelete.run({ id, through });
        head.dropped = through;
      }
      s.outboxPutHead.run({ id, ...head });
      return head.last;
    }),
    outboxTrim: db.transaction((id: string, through: number) => {
      const head = s.outboxHead.get(id);
      if (head === undefined) return;
      const gone = s.outboxThrough.get({ id, through })!;
      if (gone.n === 0) return;
      s.outboxDelete.run({ id, through });
      s.outboxPutHead.run({ id, ...head, count: head.count - gone.n, bytes: head.bytes - (gone.bytes ?? 0) });
    }),
    lock: db.transaction((id: string, holder: string, leaseMs: number, now: number): number | null => {
      const leaseUntil = s.lease.get(id);
      if (leaseUntil !== undefined && leaseUntil > now) return null;
      const fence = s.nextFence.get()!;
      s.putLock.run({ id, holder, fence, until: now + leaseMs });
      return fence;
    }),
    publish: db.transaction((origin: string, body: string, now: number): void => {
      s.pruneEvents.run(now - EVENT_RETENTION_MS);
      s.insertEvent.run({ origin, at: now, body });
    }),
  };
}

interface Connection {
  db: Database.Database;
  s: Statements;
  tx: ReturnType<typeof prepareTransactions>;
}

function translate(error: unknown): unknown {
  if (error instanceof CheckError) return error.error;
  if (error instanceof StowageError) return error;
  const code = error instanceof Database.SqliteError ? error.code : "driver failure";
  return unavailable("SQLite", `the call failed (${code})`, error);
}

/**
 * Creates a folder and its missing parents one level at a time. Node's recursive mkdirSync can loop
 * forever where a parent cannot hold folders (under /proc, say); this fails at once with the reason.
 */
function makeFolder(folder: string): void {
  const missing: string[] = [];
  for (let at = folder; ; at = dirname(at)) {
    try {
      if (!statSync(at).isDirectory()) throw unavailableFolder(folder, `${at} is not a folder`);
      break;
    } catch (error) {
      if (error instanceof StowageError) throw error;
      if ((error as NodeJS.ErrnoException).code !== "ENOENT" || dirname(at) === at) {
        throw unavailableFolder(folder, (error as Error).message);
      }
      missing.push(at);
    }
  }
  for (const at of missing.reverse()) {
    try {
      mkdirSync(at);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST")
        throw unavailableFolder(folder, (error as Error).message);
    }
  }
}

function unavailableFolder(folder: string, reason: string): StowageError {
  return unavailable("SQLite", `cannot create the folder ${folder}: ${reason}`);
}

// Rows come from the shared file, which any process (or person) may have written: check the shape.
function parseEvent(body: string): StoreEvent | undefined {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  const event = value as StoreEvent;
  return typeof event.type === "string" && typeof event.id === "string" ? event : undefined;
}

/**
 * Switches the file to WAL (a setting the file keeps). The switch needs an exclusive lock, and SQLite
 * reports SQLITE_BUSY for it without consulting the busy handler when another process is opening the same
 * new file, so this retries by hand within the same busy timeout.
 */
function enableWal(db: Database.Database, timeoutMs: number): void {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      db.pragma("journal_mode = WAL");
      return;
    } catch (error) {
      const busy = error instanceof Database.SqliteError && error.code.startsWith("SQLITE_BUSY");
      if (!busy || Date.now() >= deadline) throw error;
      // Opening is synchronous (better-sqlite3 is), so the pause is too.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5 + Math.random() * 20);
    }
  }
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * A session store in one SQLite file (better-sqlite3): the embedded default. Several processes may share
 * the file; they take turns on its write lock, waiting up to `busyTimeoutMs`.
 *
 * Every write runs in an IMMEDIATE transaction, so commits, renames and consumes are atomic across
 * processes. The file is opened lazily on first use and migrated to the current schema.
 *
 * Events: `publish` delivers at once to this store's subscribers and writes the event to the file;
 * subscribed stores on other connections (other processes) poll for it every `eventPollMs` and see
 * events up to a minute old. Delivery is at most once and unordered with respect to session writes.
 *
 * better-sqlite3 is synchronous: each async method runs its statement to completion before returning.
 *
 * @example
 * const store = new SqliteStore({ path: "./data/sessions.db" });
 */
export class SqliteStore implements SessionStore {
  /** Store name for diagnostics. */
  readonly name = "sqlite";
  readonly #path: string;
  readonly #busyTimeoutMs: number;
  readonly #sweepIntervalMs: number;
  readonly #sweepBatch: number;
  readonly #eventPollMs: number;
  // Tags this store's own events so its poller skips what publish already delivered.
  readonly #origin = randomBytes(12).toString("base64url");
  readonly #listeners = new EventFanout();
  #connection: Connection | undefined;
  #closed = false;
  #sweepTimer: NodeJS.Timeout | undefined;
  #sweeping = false;
  #pollTimer: NodeJS.Timeout | undefined;
  #cursor = 0;

  constructor(options: SqliteStoreOptions) {
    const check = new OptionChecker("SqliteStore", options, [
      "path",
      "busyTimeoutMs",
      "sweepIntervalMs",
      "sweepBatch",
      "eventPollMs",
    ]);
    if (typeof options?.path !== "string" || options.path === "") throw check.error("path is required");
    this.#path = options.path;
    this.#busyTimeoutMs = Math.ceil(check.ms("busyTimeoutMs", 5000, { zero: true }));
    this.#sweepIntervalMs = check.ms("sweepIntervalMs", 60_000, { zero: true });
    this.#sweepBatch = check.count("sweepBatch", 500);
    this.#eventPollMs = check.ms("eventPollMs", 250);
  }

  /** The raw better-sqlite3 Database (opened and migrated on first access). */
  get db(): Database.Database {
    return this.#use((c) => c.db);
  }

  #open(): Connection {
    if (this.#closed) throw closed("SQLite");
    if (this.#path !== ":memory:") makeFolder(dirname(this.#path));
    const db = new Database(this.#path, { timeout: this.#busyTimeoutMs });
    try {
      enableWal(db, this.#busyTimeoutMs);
      // In WAL mode NORMAL already survives SIGKILL (a commit reaches the WAL through write() before it
      // returns, and the OS keeps that page cache when the process dies), but not a power cut or kernel
      // crash, which can roll back the last commits. FULL syncs the WAL on every commit, so whatever a
      // commit acknowledged survives both: the durability DESIGN.md promises, at the price of one fsync.
      db.pragma("synchronous = FULL");
      migrate(db, Date.now());
      const s = prepareStatements(db);
      const connection = { db, s, tx: prepareTransactions(db, s) };
      if (this.#sweepIntervalMs > 0) {
        this.#sweepTimer = setInterval(() => this.#backgroundSweep(), this.#sweepIntervalMs).unref();
      }
      return connection;
    } catch (error) {
      db.close();
      throw error;
    }
  }

  // Every driver call goes through here: opens on first use and turns driver failures into StowageError.
  #use<T>(fn: (connection: Connection) => T): T {
    try {
      this.#connection ??= this.#open();
      return fn(this.#connection);
    } catch (error) {
      throw translate(error);
    }
  }

  async insert(record: SessionRecord): Promise<void> {
    this.#use((c) => c.tx.insert.immediate(record, Date.now()));
  }

  /** `insert` with attribute values given as JSON text, which go into the row as they are. */
  async insertEncoded(record: SessionRecord, encoded: Record<string, string>): Promise<void> {
    this.#use((c) => c.tx.insert.immediate(record, Date.now(), encoded));
  }

  async get(id: string): Promise<StoredRecord | undefined> {
    return this.#use((c) => {
      const row = c.s.get.get({ id, now: Date.now() });
      if (row === undefined) return undefined;
      const record: StoredRecord = rowToRecord(row);
      if (row.via_from !== null) {
        record.via = { from: row.via_from, verifier: row.via_verifier!, until: row.via_until! };
      }
      return record;
    });
  }

  async commit(id: string, delta: SessionDelta, options: CommitOptions = {}): Promise<number> {
    return this.#use((c) => c.tx.commit.immediate(id, delta, options.ifVersion, Date.now()));
  }

  async rename(oldId: string, newRecord: SessionRecord, options: RenameOptions): Promise<number> {
    return this.#use((c) => c.tx.rename.immediate(oldId, newRecord, options, Date.now()));
  }

  async consume(id: string, check: (record: SessionRecord) => boolean): Promise<SessionRecord | undefined> {
    return this.#use((c) => c.tx.consume.immediate(id, check, Date.now()));
  }

  async delete(id: string): Promise<boolean> {
    return this.#use((c) => c.tx.delete.immediate(id));
  }

  async touch(id: string, idleExpiresAt: number): Promise<void> {
    this.#use((c) => c.s.touch.run({ id, idle: idleExpiresAt, now: Date.now() }));
  }

  async outboxAppend(id: string, messages: string[], limits: OutboxLimits): Promise<number> {
    return this.#use((c) => c.tx.outboxAppend.immediate(id, messages, limits, Date.now()));
  }

  async outboxRead(id: string, after: number, limit = Number.MAX_SAFE_INTEGER): Promise<OutboxPage> {
    return this.#use((c) => {
      // One read transaction, so the head and the messages come from one snapshot.
      const read = c.db.transaction(() => {
        const now = Date.now();
        const head = c.s.outboxLiveHead.get({ id, now });
        if (head === undefined) return { messages: [], last: 0, droppedThrough: 0 };
        const messages = c.s.outboxAfter.all({ id, now, after, limit: Math.max(0, limit) });
        return { messages, last: head.last, droppedThrough: head.dropped };
      });
      return read.deferred();
    });
  }

  async outboxTrim(id: string, through: number): Promise<void> {
    this.#use((c) => c.tx.outboxTrim.immediate(id, through));
  }

  async *scan(options: ScanOptions = {}): AsyncIterable<SessionRecord[]> {
    const limit = scanBatch(options);
    for (let after = ""; ; ) {
      const rows = this.#use((c) => c.s.scanPage.all({ after, now: Date.now(), limit }));
      if (rows.length === 0) return;
      after = rows[rows.length - 1]!.id;
      yield rows.map(rowToRecord);
      if (rows.length < limit) return;
    }
  }

  async listByUser(userId: string): Promise<SessionRecord[]> {
    return this.#use((c) => c.s.byUser.all({ user: userId, now: Date.now() }).map(rowToRecord));
  }

  async deleteByUser(userId: string, options: { exceptId?: string } = {}): Promise<string[]> {
    return this.#use((c) => c.tx.deleteByUser.immediate(userId, options.exceptId ?? null));
  }

  /**
   * Deletes expired sessions, lapsed aliases and lapsed leases in batches of `sweepBatch`, each its own
   * short transaction, yielding to the event loop between batches. Returns how many sessions it removed.
   */
  async sweep(now: number): Promise<number> {
    const removed = await this.#sweepTable("sweepSessions", now);
    await this.#sweepTable("sweepAliases", now);
    await this.#sweepTable("sweepLocks", now);
    return removed;
  }

  async #sweepTable(table: "sweepSessions" | "sweepAliases" | "sweepLocks", now: number): Promise<number> {
    const limit = this.#sweepBatch;
    let total = 0;
    for (;;) {
      const changes = this.#use((c) => c.s[table].run({ now, limit }).changes);
      total += changes;
      if (changes < limit) return total;
      await nextTurn();
    }
  }

  #backgroundSweep(): void {
    if (this.#sweeping) return;
    this.#sweeping = true;
    // A failed background sweep (file busy past the timeout, store closing) is simply retried next period.
    this.sweep(Date.now())
      .catch(() => undefined)
      .finally(() => {
        this.#sweeping = false;
      });
  }

  async lock(id: string, leaseMs: number): Promise<StoreLock | null> {
    const holder = randomBytes(16).toString("base64url");
    const fence = this.#use((c) => c.tx.lock.immediate(id, holder, leaseMs, Date.now()));
    if (fence === null) return null;
    return {
      fence,
      release: async () => {
        this.#use((c) => c.s.releaseLock.run({ id, holder }));
      },
    };
  }

  /**
   * Delivers the event to this store's subscribers and records it in the file for stores on other
   * connections, which see it at their next poll.
   */
  async publish(event: StoreEvent): Promise<void> {
    const body = JSON.stringify(event);
    this.#use((c) => c.tx.publish.immediate(this.#origin, body, Date.now()));
    this.#deliver(body);
  }

  /** Listens for events from this store and, by polling the file, from other stores sharing it. */
  async subscribe(listener: StoreEventListener): Promise<() => Promise<void>> {
    if (this.#pollTimer === undefined) {
      this.#cursor = this.#use((c) => c.s.lastEvent.get()!);
      this.#pollTimer = setInterval(() => this.#poll(), this.#eventPollMs).unref();
    }
    const remove = this.#listeners.add(listener);
    return async () => {
      remove();
      if (this.#listeners.size === 0) this.#stopPolling();
    };
  }

  #poll(): void {
    try {
      const rows = this.#use((c) => c.s.eventsAfter.all(this.#cursor, EVENT_POLL_LIMIT));
      for (const row of rows) {
        this.#cursor = row.seq;
        if (row.origin !== this.#origin) this.#deliver(row.body);
      }
    } catch {
      // The file is busy or closing: the cursor has not moved, so the next poll picks up where this stopped.
    }
  }

  #deliver(body: string): void {
    if (this.#listeners.size === 0 || parseEvent(body) === undefined) return;
    this.#listeners.deliver(() => parseEvent(body)!);
  }

  #stopPolling(): void {
    clearInterval(this.#pollTimer);
    this.#pollTimer = undefined;
  }

  /** Stops the timers and closes the database; later calls fail with STORE_UNAVAILABLE. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#sweepTimer);
    this.#stopPolling();
    this.#listeners.clear();
    const connection = this.#connection;
    this.#connection = undefined;
    if (connection === undefined) return;
    try {
      connection.db.close();
    } catch (error) {
      throw translate(error);
    }
  }
}
