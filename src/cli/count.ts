import type BetterSqlite3 from "better-sqlite3";
import type pg from "pg";
import { StowageError } from "../core/errors.js";
import type { SessionStore } from "../core/store.js";
import { newId } from "../core/tokens.js";

/** Record counts a store can tell about itself. Fields it cannot tell are left out. */
export interface StoreCounts {
  /** Records still live at `now`. */
  live?: number;
  /** Records past their expiry that a sweep has not removed yet. */
  expired?: number;
  /** Distinct users with a live session. */
  users?: number;
  /** Records held, live or not (stores that cannot tell expiry apart). */
  held?: number;
}

/**
 * Counts records through each store's own handle (the SQLite db, the pg pool, the memory map), since the
 * store contract has no count. Redis keeps no global index of sessions, so it is only probed.
 */
export async function countRecords(store: SessionStore, now: number): Promise<StoreCounts> {
  if (store.name === "sqlite" && "db" in store)
    return sqliteCounts((store as { db: BetterSqlite3.Database }).db, now);
  if (store.name === "postgres" && "pool" in store && "table" in store) {
    const { pool, table } = store as { pool: pg.Pool; table: string };
    return postgresCounts(pool, table, now);
  }
  if (store.name === "memory" && "size" in store) return { held: (store as { size: number }).size };
  // Nothing to count, but a lookup still proves the store answers (STORE_UNAVAILABLE when it does not).
  await store.get(newId());
  return {};
}

const COUNT_SQL = (table: string, now: string) =>
  `SELECT count(*) FILTER (WHERE expiry > ${now}) AS live,
          count(*) FILTER (WHERE expiry <= ${now}) AS expired,
          count(DISTINCT user_id) FILTER (WHERE expiry > ${now}) AS users
     FROM ${table}`;

type Row = { live: number | string; expired: number | string; users: number | string };

function sqliteCounts(db: BetterSqlite3.Database, now: number): StoreCounts {
  try {
    const row = db
      .prepare<[number, number, number], Row>(COUNT_SQL("stowage_sessions", "?"))
      .get(now, now, now)!;
    return { live: Number(row.live), expired: Number(row.expired), users: Number(row.users) };
  } catch (error) {
    throw new StowageError("STORE_UNAVAILABLE", "could not count SQLite sessions", { cause: error });
  }
}

async function postgresCounts(pool: pg.Pool, table: string, now: number): Promise<StoreCounts> {
  try {
    // The table name was validated by the store (lowercase letters, digits, underscore), so quoting is enough.
    const result = await pool.query<Row>(COUNT_SQL(`"${table}"`, "$1"), [now]);
    const row = result.rows[0]!;
    return { live: Number(row.live), expired: Number(row.expired), users: Number(row.users) };
  } catch (error) {
    // A store that has never been written has no table yet: nothing to count.
    if ((error as { code?: string }).code === "42P01") return { live: 0, expired: 0, users: 0 };
    throw new StowageError("STORE_UNAVAILABLE", "could not count PostgreSQL sessions", { cause: error });
  }
}
