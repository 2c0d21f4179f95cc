import type pg from "pg";
import { StowageError } from "../../core/errors.js";

/** Default name of the sessions table. */
export const DEFAULT_TABLE = "stowage_sessions";

// Lowercase only, because PostgreSQL folds unquoted names to lowercase and people will type them unquoted in
// psql; 40 characters leaves room for the longest derived name (`<table>_aliases_until_idx`) under the
// 63-byte identifier limit.
const TABLE_RE = /^[a-z_][a-z0-9_]{0,39}$/;

/** Every database object one store table owns, as quoted identifiers, plus the raw NOTIFY channel name. */
export interface PostgresNames {
  /** The table name as configured (unquoted). */
  table: string;
  sessions: string;
  aliases: string;
  locks: string;
  migrations: string;
  fenceSeq: string;
  expiryIdx: string;
  userIdx: string;
  aliasesNewIdx: string;
  aliasesUntilIdx: string;
  locksLeaseIdx: string;
  outboxHeads: string;
  outbox: string;
  /** Channel name for pg_notify (a plain string). */
  channel: string;
  /** Channel name for LISTEN (an identifier). */
  channelIdent: string;
}

const quote = (name: string): string => `"${name}"`;

/** Validates a table name and derives the names of its companion objects; CONFIG_INVALID when unsafe. */
export function namesFor(table: string): PostgresNames {
  if (typeof table !== "string" || !TABLE_RE.test(table)) {
    throw new StowageError(
      "CONFIG_INVALID",
      "PostgresStore table must match /^[a-z_][a-z0-9_]{0,39}$/ (lowercase letters, digits, underscore)",
    );
  }
  return {
    table,
    sessions: quote(table),
    aliases: quote(`${table}_aliases`),
    locks: quote(`${table}_locks`),
    migrations: quote(`${table}_migrations`),
    fenceSeq: quote(`${table}_fence_seq`),
    expiryIdx: quote(`${table}_expiry_idx`),
    userIdx: quote(`${table}_user_idx`),
    aliasesNewIdx: quote(`${table}_aliases_new_idx`),
    aliasesUntilIdx: quote(`${table}_aliases_until_idx`),
    locksLeaseIdx: quote(`${table}_locks_lease_idx`),
    outboxHeads: quote(`${table}_outbox_heads`),
    outbox: quote(`${table}_outbox`),
    channel: `${table}_events`,
    channelIdent: quote(`${table}_events`),
  };
}

/** One schema step; steps run in order, each once, inside the migration transaction. */
interface Migration {
  version: number;
  description: string;
  statements: (n: PostgresNames) => string[];
}

const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: "sessions, aliases, locks, fence sequence, expiry and user indexes",
    statements: (n) => [
      `CREATE TABLE IF NOT EXISTS ${n.sessions} (
        id text PRIMARY KEY,
        verifier text NOT NULL,
        version bigint NOT NULL,
        created_at bigint NOT NULL,
        rotated_at bigint NOT NULL,
        expires_at bigint NOT NULL,
        idle_expires_at bigint NOT NULL,
        expiry bigint GENERATED ALWAYS AS (LEAST(expires_at, idle_expires_at)) STORED,
        user_id text,
        level smallint NOT NULL CHECK (level BETWEEN 0 AND 255),
        login_type text NOT NULL CHECK (login_type IN ('unspecified', 'human', 'robot')),
        last_login_at bigint,
        language text,
        attributes jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(attributes) = 'object'),
        channel jsonb,
        connection jsonb
      )`,
      `CREATE INDEX IF NOT EXISTS ${n.expiryIdx} ON ${n.sessions} (expiry)`,
      `CREATE INDEX IF NOT EXISTS ${n.userIdx} ON ${n.sessions} (user_id) WHERE user_id IS NOT NULL`,
      `CREATE TABLE IF NOT EXISTS ${n.aliases} (
        old_id text PRIMARY KEY,
        new_id text NOT NULL,
        verifier text NOT NULL,
        until bigint NOT NULL
      )`,
      `CREATE INDEX IF NOT EXISTS ${n.aliasesNewIdx} ON ${n.aliases} (new_id)`,
      `CREATE INDEX IF NOT EXISTS ${n.aliasesUntilIdx} ON ${n.aliases} (until)`,
      `CREATE TABLE IF NOT EXISTS ${n.locks} (
        id text PRIMARY KEY,
        holder text NOT NULL,
        fence bigint NOT NULL,
        lease_until bigint NOT NULL
      )`,
      `CREATE INDEX IF NOT EXISTS ${n.locksLeaseIdx} ON ${n.locks} (lease_until)`,
      `CREATE SEQUENCE IF NOT EXISTS ${n.fenceSeq} AS bigint`,
    ],
  },
  {
    version: 2,
    description: "outboxes: a head row per session and its messages, going with the session",
    statements: (n) => [
      // ON DELETE CASCADE: however a session row goes (delete, consume, rename, sweep), its outbox goes too.
      `CREATE TABLE IF NOT EXISTS ${n.outboxHeads} (
        session_id text PRIMARY KEY REFERENCES ${n.sessions} (id) ON DELETE CASCADE,
        last bigint NOT NULL,
        dropped bigint NOT NULL,
        count integer NOT NULL,
        bytes bigint NOT NULL
      )`,
      `CREATE TABLE IF NOT EXISTS ${n.outbox} (
        session_id text NOT NULL REFERENCES ${n.outboxHeads} (session_id) ON DELETE CASCADE,
        seq bigint NOT NULL,
        data text NOT NULL,
        bytes integer NOT NULL,
        PRIMARY KEY (session_id, seq)
      )`,
    ],
  },
];

/** The schema version this code writes and expects. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/**
 * Brings the schema up to SCHEMA_VERSION inside one transaction. A transaction-scoped advisory lock keyed
 * on the table name makes app nodes that start together take turns, so `CREATE ... IF NOT EXISTS` never
 * races on the catalog and every step runs exactly once.
 */
export async function migrate(client: pg.ClientBase, n: PostgresNames): Promise<void> {
  await client.query("BEGIN");
  try {
    await client.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [`stowage:${n.table}`]);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${n.migrations} (
        version integer PRIMARY KEY,
        description text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`,
    );
    const result = await client.query<{ v: number | null }>(`SELECT max(version) AS v FROM ${n.migrations}`);
    const current = result.rows[0]?.v ?? 0;
    if (current > SCHEMA_VERSION) {
      throw new StowageError(
        "CONFIG_INVALID",
        `table ${n.table} has schema version ${current}, newer than this stowage understands (${SCHEMA_VERSION})`,
      );
    }
    for (const step of MIGRATIONS) {
      if (step.version <= current) continue;
      for (const sql of step.statements(n)) await client.query(sql);
      await client.query(`INSERT INTO ${n.migrations} (version, description) VALUES ($1, $2)`, [
        step.version,
        step.description,
      ]);
    }
    await client.query("COMMIT");
  } catch (error) {
    // The step's own error is the one worth reporting; a failed ROLLBACK only means the connection is gone.
    await client.query("ROLLBACK").catch(() => undefined);
    throw error;
  }
}
