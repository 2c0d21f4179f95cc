import type BetterSqlite3 from "better-sqlite3";
import { StowageError } from "../../core/errors.js";

/**
 * Schema steps, applied in order; step `i` brings the file to version `i + 1`. Append only: a released
 * step never changes, because files out there already carry it.
 */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE stowage_sessions (
    id              TEXT PRIMARY KEY,
    verifier        TEXT NOT NULL,
    version         INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    rotated_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    idle_expires_at INTEGER NOT NULL,
    -- Derived by SQLite so no write path can forget to keep it in step with the two expiries.
    expiry          INTEGER GENERATED ALWAYS AS (min(expires_at, idle_expires_at)) STORED,
    user_id         TEXT,
    level           INTEGER NOT NULL,
    login_type      TEXT NOT NULL,
    last_login_at   INTEGER,
    language        TEXT,
    attributes      TEXT NOT NULL,
    channel         TEXT,
    connection      TEXT
  );
  CREATE INDEX stowage_sessions_expiry ON stowage_sessions (expiry);
  CREATE INDEX stowage_sessions_user ON stowage_sessions (user_id) WHERE user_id IS NOT NULL;

  CREATE TABLE stowage_aliases (
    old_id   TEXT PRIMARY KEY,
    new_id   TEXT NOT NULL,
    verifier TEXT NOT NULL,
    until    INTEGER NOT NULL
  );
  CREATE INDEX stowage_aliases_new ON stowage_aliases (new_id);
  CREATE INDEX stowage_aliases_until ON stowage_aliases (until);

  CREATE TABLE stowage_locks (
    id          TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    fence       INTEGER NOT NULL,
    lease_until INTEGER NOT NULL
  );
  CREATE INDEX stowage_locks_lease ON stowage_locks (lease_until);

  -- One fence sequence for all ids: strictly increasing per id too, and lets released or lapsed lock rows
  -- be deleted instead of kept forever to remember their last fence.
  CREATE TABLE stowage_counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
  );
  INSERT INTO stowage_counters (name, value) VALUES ('fence', 0);

  -- AUTOINCREMENT so a sequence number is never reused after old events are pruned: pollers keep a cursor.
  CREATE TABLE stowage_events (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    origin TEXT NOT NULL,
    at     INTEGER NOT NULL,
    body   TEXT NOT NULL
  );
  CREATE INDEX stowage_events_at ON stowage_events (at);
  `,
  `
  -- A session's outbox: its messages, and a head row with the numbering and the bounds' running totals.
  CREATE TABLE stowage_outbox_heads (
    session_id TEXT PRIMARY KEY,
    last       INTEGER NOT NULL,
    dropped    INTEGER NOT NULL,
    count      INTEGER NOT NULL,
    bytes      INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE stowage_outbox (
    session_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    data       TEXT NOT NULL,
    bytes      INTEGER NOT NULL,
    PRIMARY KEY (session_id, seq)
  ) WITHOUT ROWID;
  -- However a record goes (delete, consume, rename, sweep, a lapsed one cleared for a new insert), its
  -- outbox goes with it, without any write path having to remember.
  CREATE TRIGGER stowage_outbox_follows_session AFTER DELETE ON stowage_sessions BEGIN
    DELETE FROM stowage_outbox WHERE session_id = OLD.id;
    DELETE FROM stowage_outbox_heads WHERE session_id = OLD.id;
  END;
  `,
];

/** The schema version this build of stowage writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Brings the file up to SCHEMA_VERSION. Everything happens in one IMMEDIATE transaction, so when several
 * processes open the same new file at once, one applies the steps and the others wait (busy_timeout), then
 * find them recorded and do nothing.
 */
export function migrate(db: BetterSqlite3.Database, now: number): void {
  const run = db.transaction(() => {
    db.exec(
      "CREATE TABLE IF NOT EXISTS stowage_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    );
    const current = db
      .prepare("SELECT coalesce(max(version), 0) FROM stowage_migrations")
      .pluck()
      .get() as number;
    if (current > SCHEMA_VERSION) {
      throw new StowageError(
        "CONFIG_INVALID",
        `SQLite schema version ${current} is newer than this stowage supports (${SCHEMA_VERSION})`,
      );
    }
    const record = db.prepare("INSERT INTO stowage_migrations (version, applied_at) VALUES (?, ?)");
    for (let version = current + 1; version <= SCHEMA_VERSION; version++) {
      db.exec(MIGRATIONS[version - 1]!);
      record.run(version, now);
    }
  });
  run.immediate();
}
