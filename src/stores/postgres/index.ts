import { createHash, randomBytes } from "node:crypto";
import pg from "pg";
import { attributesJson } from "../../core/json.js";
import { OptionChecker } from "../../core/options.js";
import type {
  Attributes,
  ChannelState,
  ConnectionRef,
  LoginType,
  MetaPatch,
  SessionRecord,
} from "../../core/record.js";
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
import { closed, conflict, duplicate, ended, stillChanging } from "../shared/errors.js";
import { EventFanout } from "../shared/events.js";
import { scanBatch } from "../shared/scan.js";
import { parseStoreUrl } from "../shared/url.js";
import { connectWithin, toStowageError, within } from "./guard.js";
import { PgListener } from "./listener.js";
import { DEFAULT_TABLE, migrate, namesFor, type PostgresNames } from "./schema.js";

/** Options for {@link PostgresStore}. */
export interface PostgresStoreOptions {
  /** Connection URL for the store's own pool, e.g. `postgres://user@host:5432/db`. @default pg's PG* environment variables */
  connectionString?: string;
  /** An existing pg Pool to use instead of creating one; the store never ends it. @default a pool the store creates */
  pool?: pg.Pool;
  /** Sessions table name; companion objects are named `<table>_aliases`, `<table>_locks`, ... @default "stowage_sessions" */
  table?: string;
  /** Upper bound for every call, in ms; past it the call rejects with STORE_UNAVAILABLE. @default 2000 */
  timeoutMs?: number;
  /** Mean interval between background sweeps (each node jitters it by ±50%); 0 turns them off. @default 60000 */
  sweepIntervalMs?: number;
  /** Rows removed per DELETE statement during a sweep. @default 1000 */
  sweepBatch?: number;
  /** Use named prepared statements (turn off behind a pooler that cannot keep them, e.g. PgBouncer < 1.21 in transaction mode). @default true */
  preparedStatements?: boolean;
}

interface SessionRow {
  id: string;
  verifier: string;
  version: string;
  created_at: string;
  rotated_at: string;
  expires_at: string;
  idle_expires_at: string;
  user_id: string | null;
  level: number;
  login_type: LoginType;
  last_login_at: string | null;
  language: string | null;
  attributes: Attributes;
  channel: ChannelState | null;
  connection: ConnectionRef | null;
}

interface GetRow extends SessionRow {
  via_from: string | null;
  via_verifier: string | null;
  via_until: string | null;
}

interface EventEnvelope {
  /** The publishing store instance, so it can skip its own notices (it delivered them directly). */
  origin: string;
  event: StoreEvent;
}

// version comes last so the record's other fields are $1..$14 in every statement that writes a row.
const COLUMNS =
  "id, verifier, created_at, rotated_at, expires_at, idle_expires_at, user_id, level, login_type, " +
  "last_login_at, language, attributes, channel, connection, version";
const ALIASED_COLUMNS = COLUMNS.split(", ")
  .map((column) => `r.${column}`)
  .join(", ");

/** Meta fields in the order commit applies them, with their column and parameter type. */
const META_COLUMNS: readonly { key: keyof MetaPatch; column: string; type: string; json?: true }[] = [
  { key: "expiresAt", column: "expires_at", type: "bigint" },
  { key: "idleExpiresAt", column: "idle_expires_at", type: "bigint" },
  { key: "userId", column: "user_id", type: "text" },
  { key: "level", column: "level", type: "smallint" },
  { key: "loginType", column: "login_type", type: "text" },
  { key: "lastLoginAt", column: "last_login_at", type: "bigint" },
  { key: "language", column: "language", type: "text" },
  { key: "channel", column: "channel", type: "jsonb", json: true },
  { key: "connection", column: "connection", type: "jsonb", json: true },
];

const EVENT_TYPES = new Set<string>(["ended", "replaced", "revoked", "outbox"]);
const CONSUME_ATTEMPTS = 100;

/** Errors the caller's own code threw (a consume check); they pass through untouched. */
class CallerError {
  constructor(readonly error: unknown) {}
}

function toRecord(row: SessionRow): SessionRecord {
  const record: SessionRecord = {
    id: row.id,
    verifier: row.verifier,
    version: Number(row.version),
    createdAt: Number(row.created_at),
    rotatedAt: Number(row.rotated_at),
    expiresAt: Number(row.expires_at),
    idleExpiresAt: Number(row.idle_expires_at),
    level: row.level,
    loginType: row.login_type,
    attributes: row.attributes,
  };
  if (row.user_id !== null) record.userId = row.user_id;
  if (row.last_login_at !== null) record.lastLoginAt = Number(row.last_login_at);
  if (row.language !== null) record.language = row.language;
  if (row.channel !== null) record.channel = row.channel;
  if (row.connection !== null) record.connection = row.connection;
  return record;
}

/** Parameters $1..$14 in COLUMNS order; jsonb values are sent as JSON text (pg would turn arrays into SQL arrays). */
function recordParams(record: SessionRecord, encoded?: Record<string, string>): unknown[] {
  return [
    record.id,
    record.verifier,
    record.createdAt,
    record.rotatedAt,
    record.expiresAt,
    record.idleExpiresAt,
    record.userId ?? null,
    record.level,
    record.loginType,
    record.lastLoginAt ?? null,
    record.language ?? null,
    encoded === undefined
      ? JSON.stringify(record.attributes ?? {})
      : attributesJson(record.attributes, encoded),
    record.channel ? JSON.stringify(record.channel) : null,
    record.connection ? JSON.stringify(record.connection) : null,
  ];
}

const RECORD_CASTS =
  "$1::text, $2::text, $3::bigint, $4::bigint, $5::bigint, $6::bigint, $7::text, $8::smallint, $9::text, " +
  "$10::bigint, $11::text, $12::jsonb, $13::jsonb, $14::jsonb";

const statementNames = new Map<string, string>();

/**
 * A prepared-statement name derived from the SQL text, so each pooled connection parses and plans a
 * statement once. Derived, not counted, because stores on different tables may share one pool and a name
 * must never be reused for different text on a connection. The set of texts is small and fixed (commit
 * varies only by which meta fields it sets), so the cache stays bounded.
 */
function statementName(text: string): string {
  let name = statementNames.get(text);
  if (!name) {
    name = `stowage_${createHash("sha256").update(text).digest("base64url").slice(0, 24)}`;
    statementNames.set(text, name);
  }
  return name;
}

function isStoreEvent(value: unknown): value is StoreEvent {
  const event = value as Partial<StoreEvent> | null;
  return (
    typeof event === "object" &&
    event !== null &&
    typeof event.type === "string" &&
    EVENT_TYPES.has(event.type) &&
    typeof event.id === "string" &&
    typeof event.at === "number"
  );
}

/**
 * A connection URL pg can use: postgres: or postgresql:, a port from 1 to 65535 if any. pg would accept
 * `:notaport` and fail every call later; its parse errors may quote the URL, password included.
 */
function checkPostgresUrl(check: OptionChecker, url: unknown): void {
  parseStoreUrl(check, "connectionString", url, {
    protocols: ["postgres:", "postgresql:"],
    expected: "postgres://[user[:password]@]host[:port]/db",
  });
}

/**
 * A SessionStore on PostgreSQL: one row per session with attributes in jsonb, merged per key by a single
 * UPDATE; rotation aliases and locks in companion tables; LISTEN/NOTIFY for events. The schema is created
 * and migrated on first use. See docs/postgres-schema.md.
 *
 * @example
 * const store = new PostgresStore({ connectionString: "postgres://app@db/app" });
 * const sessions = createSessions({ store });
 */
export class PostgresStore implements SessionStore {
  /** Store name for diagnostics. */
  readonly name = "postgres";
  readonly #pool: pg.Pool;
  readonly #ownsPool: boolean;
  readonly #n: PostgresNames;
  readonly #timeoutMs: number;
  readonly #sweepIntervalMs: number;
  readonly #sweepBatch: number;
  readonly #prepared: boolean;
  readonly #origin = randomBytes(12).toString("base64url");
  readonly #listeners = new EventFanout();
  readonly #listener: PgListener;
  #ready: Promise<void> | undefined;
  #sweepTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: PostgresStoreOptions = {}) {
    const check = new OptionChecker("PostgresStore", options, [
      "connectionString",
      "pool",
      "table",
      "timeoutMs",
      "sweepIntervalMs",
      "sweepBatch",
      "preparedStatements",
    ]);
    if (options.pool && options.connectionString !== undefined) {
      throw check.error("give either pool or connectionString, not both");
    }
    if (options.connectionString !== undefined) checkPostgresUrl(check, options.connectionString);
    this.#n = namesFor(check.text("table", DEFAULT_TABLE));
    this.#timeoutMs = check.ms("timeoutMs", 2_000);
    this.#sweepIntervalMs = check.ms("sweepIntervalMs", 60_000, { zero: true });
    this.#sweepBatch = check.count("sweepBatch", 1_000);
    this.#prepared = check.flag("preparedStatements", true);
    this.#ownsPool = !options.pool;
    this.#pool =
      options.pool ??
      new pg.Pool({
        connectionString: options.connectionString,
        connectionTimeoutMillis: this.#timeoutMs,
        query_timeout: this.#timeoutMs,
        statement_timeout: this.#timeoutMs,
        keepAlive: true,
        allowExitOnIdle: true,
      });
    this.#pool.on("error", this.#onIdleClientError);
    this.#listener = new PgListener(this.#pool, this.#n.channel, this.#n.channelIdent, this.#timeoutMs, (p) =>
      this.#onNotification(p),
    );
    this.#scheduleSweep();
  }

  /** The pg Pool behind this store (the one passed in, or the store's own). */
  get pool(): pg.Pool {
    return this.#pool;
  }

  /** The sessions table name. */
  get table(): string {
    return this.#n.table;
  }

  async insert(record: SessionRecord): Promise<void> {
    return this.#insert(record, undefined);
  }

  /** `insert` with attribute values given as JSON text, which go into the jsonb as they are. */
  async insertEncoded(record: SessionRecord, encoded: Record<string, string>): Promise<void> {
    return this.#insert(record, encoded);
  }

  async #insert(record: SessionRecord, encoded: Record<string, string> | undefined): Promise<void> {
    const s = this.#n;
    const result = await this.#run("insert", () =>
      this.#query(
        `INSERT INTO ${s.sessions} (${COLUMNS})
         SELECT ${RECORD_CASTS}, $15::bigint
         WHERE NOT EXISTS (SELECT 1 FROM ${s.aliases} WHERE old_id = $1 AND until > $16::bigint)
         ON CONFLICT (id) DO NOTHING`,
        [...recordParams(record, encoded), record.version, Date.now()],
      ),
    );
    if (result.rowCount === 0) throw duplicate();
  }

  async get(id: string): Promise<StoredRecord | undefined> {
    const s = this.#n;
    const { rows } = await this.#run("get", () =>
      this.#query<GetRow>(
        `SELECT NULL::text AS via_from, NULL::text AS via_verifier, NULL::bigint AS via_until, ${COLUMNS}
           FROM ${s.sessions} WHERE id = $1
         UNION ALL
         SELECT a.old_id, a.verifier, a.until, ${ALIASED_COLUMNS}
           FROM ${s.aliases} a JOIN ${s.sessions} r ON r.id = a.new_id
          WHERE a.old_id = $1 AND a.until > $2`,
        [id, Date.now()],
      ),
    );
    const row = rows.find((r) => r.via_from === null) ?? rows[0];
    if (!row) return undefined;
    const record: StoredRecord = toRecord(row);
    if (row.via_from !== null && row.via_verifier !== null && row.via_until !== null) {
      record.via = { from: row.via_from, verifier: row.via_verifier, until: Number(row.via_until) };
    }
    return record;
  }

  async commit(id: string, delta: SessionDelta, options: CommitOptions = {}): Promise<number> {
    const s = this.#n;
    const values: unknown[] = [id, JSON.stringify(delta.set ?? {}), delta.unset ?? []];
    const sets = ["attributes = (attributes || $2::jsonb) - $3::text[]", "version = version + 1"];
    const meta = delta.meta ?? {};
    for (const { key, column, type, json } of META_COLUMNS) {
      const value = meta[key];
      if (value === undefined) continue;
      values.push(json && value !== null ? JSON.stringify(value) : value);
      sets.push(`${column} = $${values.length}::${type}`);
    }
    let where = "id = $1";
    if (options.ifVersion !== undefined) {
      values.push(options.ifVersion);
      where += ` AND version = $${values.length}::bigint`;
    }
    return this.#run("commit", async () => {
      const result = await this.#query<{ version: string }>(
        `UPDATE ${s.sessions} SET ${sets.join(", ")} WHERE ${where} RETURNING version`,
        values,
      );
      const row = result.rows[0];
      if (row) return Number(row.version);
      // Zero rows: only now ask why. A row that exists means the version guard failed.
      if (options.ifVersion !== undefined && (await this.#exists(id))) {
        throw conflict();
      }
      throw ended();
    });
  }

  async rename(oldId: string, newRecord: SessionRecord, options: RenameOptions): Promise<number> {
    const s = this.#n;
    const grace = options.graceMs > 0;
    const values = [...recordParams(newRecord), oldId];
    if (grace) values.push(Date.now() + options.graceMs);
    let guard = "";
    if (options.ifVersion !== undefined) {
      values.push(options.ifVersion);
      guard = ` AND version = $${values.length}::bigint`;
    }
    // One statement: every CTE sees the same snapshot and commits (or fails) together. Older aliases that
    // pointed at oldId follow the session to its new id during a routine rotation, and die with it otherwise.
    const older = grace
      ? `UPDATE ${s.aliases} SET new_id = $1 WHERE new_id = $15 AND EXISTS (SELECT 1 FROM old)`
      : `DELETE FROM ${s.aliases} WHERE new_id = $15 AND EXISTS (SELECT 1 FROM old)`;
    const alias = grace
      ? `, alias AS (
           INSERT INTO ${s.aliases} (old_id, new_id, verifier, until)
           SELECT $15, $1, old.verifier, $16::bigint FROM old
           ON CONFLICT (old_id) DO UPDATE
             SET new_id = EXCLUDED.new_id, verifier = EXCLUDED.verifier, until = EXCLUDED.until)`
      : "";
    const sql = `WITH old AS (
        DELETE FROM ${s.sessions} WHERE id = $15::text${guard} RETURNING version, verifier
      ), fresh AS (
        INSERT INTO ${s.sessions} (${COLUMNS})
        SELECT ${RECORD_CASTS}, old.version + 1 FROM old
        RETURNING version
      ), older AS (${older})${alias}
      SELECT version FROM fresh`;
    return this.#run("rename", async () => {
      let result: pg.QueryResult<{ version: string }>;
      try {
        result = await this.#query<{ version: string }>(sql, values);
      } catch (error) {
        if ((error as { code?: unknown }).code === "23505") {
          throw duplicate(error);
        }
        throw error;
      }
      const row = result.rows[0];
      if (row) return Number(row.version);
      if (options.ifVersion !== undefined && (await this.#exists(oldId))) {
        throw conflict();
      }
      throw ended();
    });
  }

  async consume(id: string, check: (record: SessionRecord) => boolean): Promise<SessionRecord | undefined> {
    const s = this.#n;
    return this.#run("consume", async () => {
      for (let attempt = 0; attempt < CONSUME_ATTEMPTS; attempt++) {
        const { rows } = await this.#query<SessionRow>(`SELECT ${COLUMNS} FROM ${s.sessions} WHERE id = $1`, [
          id,
        ]);
        const row = rows[0];
        if (!row) return undefined;
        let passed: boolean;
        try {
          passed = check(toRecord(structuredClone(row)));
        } catch (error) {
          throw new CallerError(error);
        }
        if (!passed) return undefined;
        const removed = await this.#query(
          `WITH gone AS (DELETE FROM ${s.sessions} WHERE id = $1 AND version = $2::bigint RETURNING id),
                aliases AS (DELETE FROM ${s.aliases} WHERE new_id IN (SELECT id FROM gone))
           SELECT id FROM gone`,
          [id, row.version],
        );
        if (removed.rowCount === 1) return toRecord(row);
        // The record moved (or went) between read and delete: judge the new state.
      }
      throw stillChanging("consume");
    });
  }

  async delete(id: string): Promise<boolean> {
    const s = this.#n;
    const result = await this.#run("delete", () =>
      this.#query(
        `WITH gone AS (DELETE FROM ${s.sessions} WHERE id = $1 RETURNING id),
              aliases AS (DELETE FROM ${s.aliases} WHERE new_id = $1 AND EXISTS (SELECT 1 FROM gone))
         SELECT id FROM gone`,
        [id],
      ),
    );
    return result.rowCount === 1;
  }

  async outboxAppend(id: string, messages: string[], limits: OutboxLimits): Promise<number> {
    const s = this.#n;
    const bytes = messages.reduce((sum, data) => sum + Buffer.byteLength(data), 0);
    return this.#run("outboxAppend", async () => {
      // One statement numbers and stores the batch: the head row's lock orders parallel appends.
      const { rows } = await this.#query<{ last: string; count: number; bytes: string }>(
        `WITH head AS (
           INSERT INTO ${s.outboxHeads} AS h (session_id, last, dropped, count, bytes)
           SELECT id, $2::bigint, 0, $2::integer, $4::bigint FROM ${s.sessions} WHERE id = $1 AND expiry > $5::bigint
           ON CONFLICT (session_id) DO UPDATE
             SET last = h.last + $2::bigint, count = h.count + $2::integer, bytes = h.bytes + $4::bigint
           RETURNING last, count, bytes),
         added AS (
           INSERT INTO ${s.outbox} (session_id, seq, data, bytes)
           SELECT $1, head.last - $2::bigint + m.ord, m.data, octet_length(m.data)
             FROM head, unnest($3::text[]) WITH ORDINALITY AS m(data, ord))
         SELECT last, count, bytes FROM head`,
        [id, messages.length, messages, bytes, Date.now()],
      );
      const head = rows[0];
      if (head === undefined) throw ended();
      if (head.count > limits.maxMessages || Number(head.bytes) > limits.maxBytes) {
        // The newest are kept while both bounds hold; the rest, oldest first, go.
        await this.#query(
          `WITH ranked AS (
             SELECT seq, row_number() OVER w AS rn, sum(bytes) OVER w AS cum
               FROM ${s.outbox} WHERE session_id = $1 WINDOW w AS (ORDER BY seq DESC)),
           gone AS (
             DELETE FROM ${s.outbox} o USING ranked r
              WHERE o.session_id = $1 AND o.seq = r.seq AND (r.rn > $2::bigint OR r.cum > $3::bigint)
             RETURNING o.seq, o.bytes)
           UPDATE ${s.outboxHeads}
              SET dropped = GREATEST(dropped, (SELECT max(seq) FROM gone)),
                  count = count - (SELECT count(*) FROM gone),
                  bytes = bytes - (SELECT coalesce(sum(bytes), 0) FROM gone)
            WHERE session_id = $1 AND EXISTS (SELECT 1 FROM gone)`,
          [id, limits.maxMessages, limits.maxBytes],
        );
      }
      return Number(head.last);
    });
  }

  async outboxRead(id: string, after: number, limit = Number.MAX_SAFE_INTEGER): Promise<OutboxPage> {
    const s = this.#n;
    const { rows } = await this.#run("outboxRead", () =>
      this.#query<{ last: string; dropped: string; seq: string | null; data: string | null }>(
        `SELECT h.last, h.dropped, o.seq, o.data
           FROM ${s.outboxHeads} h JOIN ${s.sessions} x ON x.id = h.session_id
           LEFT JOIN LATERAL (
             SELECT seq, data FROM ${s.outbox} WHERE session_id = h.session_id AND seq > $2::bigint
              ORDER BY seq LIMIT $3::bigint) o ON true
          WHERE h.session_id = $1 AND x.expiry > $4::bigint
          ORDER BY o.seq`,
        [id, Math.floor(after), Math.max(0, Math.min(limit, Number.MAX_SAFE_INTEGER)), Date.now()],
      ),
    );
    const first = rows[0];
    if (first === undefined) return { messages: [], last: 0, droppedThrough: 0 };
    const messages = rows
      .filter((row) => row.seq !== null)
      .map((row) => ({ seq: Number(row.seq), data: row.data! }));
    return { messages, last: Number(first.last), droppedThrough: Number(first.dropped) };
  }

  async outboxTrim(id: string, through: number): Promise<void> {
    const s = this.#n;
    await this.#run("outboxTrim", () =>
      this.#query(
        `WITH gone AS (DELETE FROM ${s.outbox} WHERE session_id = $1 AND seq <= $2::bigint RETURNING bytes)
         UPDATE ${s.outboxHeads}
            SET count = count - (SELECT count(*) FROM gone), bytes = bytes - (SELECT coalesce(sum(bytes), 0) FROM gone)
          WHERE session_id = $1 AND EXISTS (SELECT 1 FROM gone)`,
        [id, Math.floor(through)],
      ),
    );
  }

  async touch(id: string, idleExpiresAt: number): Promise<void> {
    await this.#run("touch", () =>
      this.#query(`UPDATE ${this.#n.sessions} SET idle_expires_at = $2::bigint WHERE id = $1`, [
        id,
        idleExpiresAt,
      ]),
    );
  }

  async *scan(options: ScanOptions = {}): AsyncIterable<SessionRecord[]> {
    const limit = scanBatch(options);
    for (let after = ""; ; ) {
      // Keyset pages in id order through the primary key: each page costs O(page), never an OFFSET.
      const { rows } = await this.#run("scan", () =>
        this.#query<SessionRow>(
          `SELECT ${COLUMNS} FROM ${this.#n.sessions} WHERE id > $1 AND expiry > $2 ORDER BY id LIMIT $3`,
          [after, Date.now(), limit],
        ),
      );
      if (rows.length === 0) return;
      after = rows[rows.length - 1]!.id;
      yield rows.map(toRecord);
      if (rows.length < limit) return;
    }
  }

  async listByUser(userId: string): Promise<SessionRecord[]> {
    const { rows } = await this.#run("listByUser", () =>
      this.#query<SessionRow>(
        `SELECT ${COLUMNS} FROM ${this.#n.sessions} WHERE user_id = $1 AND expiry > $2 ORDER BY created_at, id`,
        [userId, Date.now()],
      ),
    );
    return rows.map(toRecord);
  }

  async deleteByUser(userId: string, options: { exceptId?: string } = {}): Promise<string[]> {
    const s = this.#n;
    const { rows } = await this.#run("deleteByUser", () =>
      this.#query<{ id: string }>(
        `WITH gone AS (
           DELETE FROM ${s.sessions} WHERE user_id = $1 AND ($2::text IS NULL OR id <> $2) RETURNING id
         ), aliases AS (DELETE FROM ${s.aliases} WHERE new_id IN (SELECT id FROM gone))
         SELECT id FROM gone`,
        [userId, options.exceptId ?? null],
      ),
    );
    return rows.map((r) => r.id);
  }

  /**
   * Removes sessions whose expiry is at or before `now` in batches along the expiry index, then expired
   * aliases and lock leases. Each batch is its own statement (and timeout), so a large backlog never
   * holds long locks; SKIP LOCKED lets several nodes sweep at once without waiting on each other.
   */
  async sweep(now: number): Promise<number> {
    const s = this.#n;
    let removed = 0;
    for (;;) {
      const { rows } = await this.#run("sweep", () =>
        this.#query<{ n: number }>(
          `WITH gone AS (
             DELETE FROM ${s.sessions} WHERE id IN (
               SELECT id FROM ${s.sessions} WHERE expiry <= $1 ORDER BY expiry LIMIT $2 FOR UPDATE SKIP LOCKED
             ) RETURNING id
           ), aliases AS (DELETE FROM ${s.aliases} WHERE new_id IN (SELECT id FROM gone))
           SELECT count(*)::int AS n FROM gone`,
          [now, this.#sweepBatch],
        ),
      );
      const n = rows[0]?.n ?? 0;
      removed += n;
      if (n < this.#sweepBatch) break;
    }
    await this.#run("sweep", () =>
      this.#query(
        `WITH aliases AS (DELETE FROM ${s.aliases} WHERE until <= $1)
         DELETE FROM ${s.locks} WHERE lease_until <= $1`,
        [now],
      ),
    );
    return removed;
  }

  async lock(id: string, leaseMs: number): Promise<StoreLock | null> {
    const s = this.#n;
    const holder = randomBytes(16).toString("base64url");
    const now = Date.now();
    // The advisory lock (held to the end of this statement's transaction) serializes acquisitions of one id,
    // so the order of nextval() is the order of acquisition even when a released or swept row is re-inserted.
    const { rows } = await this.#run("lock", () =>
      this.#query<{ fence: string }>(
        `WITH turn AS (SELECT pg_advisory_xact_lock(hashtextextended($5, 0)))
         INSERT INTO ${s.locks} (id, holder, fence, lease_until)
         SELECT $1::text, $2::text, nextval('${s.fenceSeq}'), $3::bigint FROM turn
         ON CONFLICT (id) DO UPDATE
           SET holder = EXCLUDED.holder, fence = EXCLUDED.fence, lease_until = EXCLUDED.lease_until
           WHERE ${s.locks}.lease_until <= $4::bigint
         RETURNING fence`,
        [id, holder, now + leaseMs, now, `stowage:${s.table}:lock:${id}`],
      ),
    );
    const row = rows[0];
    if (!row) return null;
    let released = false;
    return {
      fence: Number(row.fence),
      release: async () => {
        if (released) return;
        await this.#run("unlock", () =>
          this.#query(`DELETE FROM ${s.locks} WHERE id = $1 AND holder = $2`, [id, holder]),
        );
        released = true;
      },
    };
  }

  async publish(event: StoreEvent): Promise<void> {
    const envelope: EventEnvelope = { origin: this.#origin, event };
    await this.#run("publish", () =>
      this.#query("SELECT pg_notify($1, $2)", [this.#n.channel, JSON.stringify(envelope)]),
    );
    this.#dispatch(event);
  }

  async subscribe(listener: StoreEventListener): Promise<() => Promise<void>> {
    if (this.#closed) throw closed("PostgreSQL");
    const remove = this.#listeners.add(listener);
    try {
      await this.#listener.start();
    } catch (error) {
      await this.#forget(remove);
      throw toStowageError(error, "subscribe");
    }
    return () => this.#forget(remove);
  }

  /** Stops the sweep timer and the LISTEN connection, and ends the pool if the store created it. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#sweepTimer);
    this.#listeners.clear();
    await this.#listener.stop();
    if (this.#ownsPool) {
      await within(this.#pool.end(), this.#timeoutMs, "close").catch(() => undefined);
    } else {
      this.#pool.off("error", this.#onIdleClientError);
    }
  }

  // An idle pooled connection that dies (server restart, network cut) is dropped by the pool; the next call
  // opens a fresh one or reports STORE_UNAVAILABLE. Without a listener, pg would crash the process instead.
  readonly #onIdleClientError = (): void => undefined;

  async #forget(remove: () => void): Promise<void> {
    const before = this.#listeners.size;
    remove();
    if (this.#listeners.size === before || this.#listeners.size > 0) return;
    await this.#listener.stop();
  }

  #onNotification(payload: string): void {
    let envelope: Partial<EventEnvelope>;
    try {
      envelope = JSON.parse(payload) as Partial<EventEnvelope>;
    } catch {
      // Someone else's NOTIFY on our channel; not ours to interpret.
      return;
    }
    if (envelope.origin === this.#origin || !isStoreEvent(envelope.event)) return;
    this.#dispatch(envelope.event);
  }

  #dispatch(event: StoreEvent): void {
    this.#listeners.deliver(() => structuredClone(event));
  }

  #query<R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<pg.QueryResult<R>> {
    // query_timeout per query so a pool passed in by the caller gets the same read bound as our own.
    const config: pg.QueryConfig & { query_timeout: number } = {
      name: this.#prepared ? statementName(text) : undefined,
      text,
      values,
      query_timeout: this.#timeoutMs,
    };
    return this.#pool.query<R>(config);
  }

  async #exists(id: string): Promise<boolean> {
    const { rowCount } = await this.#query(`SELECT 1 FROM ${this.#n.sessions} WHERE id = $1`, [id]);
    return rowCount === 1;
  }

  /** Runs one call: schema ready, bounded by the timeout, every failure a StowageError. */
  async #run<T>(what: string, work: () => Promise<T>): Promise<T> {
    if (this.#closed) throw closed("PostgreSQL");
    try {
      return await within(this.#ensureSchema().then(work), this.#timeoutMs, what);
    } catch (error) {
      if (error instanceof CallerError) throw error.error;
      throw toStowageError(error, what);
    }
  }

  #ensureSchema(): Promise<void> {
    this.#ready ??= this.#migrate().catch((error: unknown) => {
      // Not cached: the next call tries again (the server may be back by then).
      this.#ready = undefined;
      throw error;
    });
    return this.#ready;
  }

  async #migrate(): Promise<void> {
    const client = await connectWithin(this.#pool, this.#timeoutMs);
    // A checked-out client has no 'error' listener; a connection lost mid-migration must not crash us.
    const onError = (): void => undefined;
    client.on("error", onError);
    let failure: Error | undefined;
    try {
      await migrate(client, this.#n);
    } catch (error) {
      failure = error instanceof Error ? error : new Error(String(error));
      throw error;
    } finally {
      client.off("error", onError);
      client.release(failure);
    }
  }

  #scheduleSweep(): void {
    if (this.#sweepIntervalMs === 0 || this.#closed) return;
    const delay = this.#sweepIntervalMs * (0.5 + Math.random());
    this.#sweepTimer = setTimeout(() => {
      this.sweep(Date.now())
        // A background sweep has no caller to tell; calls report outages themselves and the next tick retries.
        .catch(() => undefined)
        .finally(() => this.#scheduleSweep());
    }, delay);
    this.#sweepTimer.unref();
  }
}
