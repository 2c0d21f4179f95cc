import { randomBytes } from "node:crypto";
import type pg from "pg";

/** The shared test server (trust auth, database `test`). */
export const POSTGRES_URL =
  process.env.STOWAGE_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";

/** A table name no other test file or run will use. */
export function uniqueTable(label: string): string {
  return `t_${label}_${process.pid}_${randomBytes(4).toString("hex")}`;
}

/** Drops every object a PostgresStore created for `table`. */
export async function dropStoreTables(pool: pg.Pool, table: string): Promise<void> {
  await pool.query(
    `DROP TABLE IF EXISTS "${table}_outbox", "${table}_outbox_heads", "${table}", "${table}_aliases", "${table}_locks", "${table}_migrations";
     DROP SEQUENCE IF EXISTS "${table}_fence_seq"`,
  );
}
