import { randomBytes } from "node:crypto";
import pg from "pg";
import { createSessions, type Session } from "stowage";
import { PostgresStore } from "stowage/postgres";
import { rate } from "./common.js";
import { oneKbAttributes } from "./fixtures.js";
import { inFlight, measure } from "./micro.js";
import { type GroupReport, ratioRow } from "./report.js";

const URL = process.env.STOWAGE_BENCH_POSTGRES ?? "postgres://postgres@127.0.0.1:5432/test";
/** Operations in flight at once, on every side. */
const CONCURRENCY = 50;
const OPS = 250;
const WRITE_OPS = 100;
/** pg.Pool's default size, stated so the figure says what it was measured with. */
const POOL_SIZE = 10;
const IDLE_MS = 30 * 60_000;

/** Group "postgres": PostgresStore against a raw pg point SELECT on the same table and pool. */
export async function run(): Promise<GroupReport> {
  const table = `bench_${randomBytes(4).toString("hex")}`;
  const pool = new pg.Pool({ connectionString: URL, max: POOL_SIZE });
  const store = new PostgresStore({ pool, table, sweepIntervalMs: 0 });
  const sessions = createSessions({ store });
  try {
    const fixture = oneKbAttributes();
    const tokens: string[] = [];
    const ids: string[] = [];
    for (let i = 0; i < CONCURRENCY; i++) {
      const s = sessions.create({ attributes: fixture });
      await s.save();
      tokens.push(s.token);
      ids.push(s.id);
    }
    const loaded = (await Promise.all(tokens.map((t) => sessions.load(t)))) as Session[];
    const select = `SELECT * FROM "${table}" WHERE id = $1`;
    const update = `UPDATE "${table}" SET attributes = attributes || $2::jsonb, idle_expires_at = $3,
      version = version + 1 WHERE id = $1 RETURNING version`;
    let counter = 0;
    const figures = await measure(
      [
        { name: "get", batch: OPS, fn: inFlight(CONCURRENCY, OPS, (w) => store.get(ids[w]!)) },
        { name: "raw-get", batch: OPS, fn: inFlight(CONCURRENCY, OPS, (w) => pool.query(select, [ids[w]])) },
        { name: "load", batch: OPS, fn: inFlight(CONCURRENCY, OPS, (w) => sessions.load(tokens[w])) },
        {
          name: "commit-store",
          batch: WRITE_OPS,
          fn: inFlight(CONCURRENCY, WRITE_OPS, (w) =>
            store.commit(ids[w]!, {
              set: { counter: ++counter },
              meta: { idleExpiresAt: Date.now() + IDLE_MS },
            }),
          ),
        },
        {
          name: "commit-manager",
          batch: WRITE_OPS,
          fn: inFlight(CONCURRENCY, WRITE_OPS, (w) => {
            const s = loaded[w]!;
            s.set("counter", ++counter);
            return sessions.commit(s);
          }),
        },
        {
          name: "raw-commit",
          batch: WRITE_OPS,
          fn: inFlight(CONCURRENCY, WRITE_OPS, (w) =>
            pool.query(update, [ids[w], JSON.stringify({ counter: ++counter }), Date.now() + IDLE_MS]),
          ),
        },
      ],
      { rounds: 8 },
    );
    const r = (name: string, label: string) => rate(label, figures, name);
    return {
      group: "postgres",
      title: "PostgreSQL: PostgresStore",
      rows: [
        ratioRow("PostgresStore get", r("get", "store.get(id)"), r("raw-get", "pg point SELECT"), 0.7),
        ratioRow(
          "PostgresStore get, through the manager",
          r("load", "sessions.load(token)"),
          r("raw-get", "pg point SELECT"),
        ),
        ratioRow(
          "PostgresStore commit of one changed key",
          r("commit-store", "store.commit(id, delta)"),
          r("raw-commit", "pg UPDATE … || jsonb"),
        ),
        ratioRow(
          "PostgresStore commit of one changed key, through the manager",
          r("commit-manager", "set + sessions.commit"),
          r("raw-commit", "pg UPDATE … || jsonb"),
        ),
      ],
      notes: [
        `${CONCURRENCY} operations in flight on every side (a closed loop, as in the Redis group; median of` +
          ` 8 rounds) over one pg.Pool of ${POOL_SIZE} connections` +
          " shared by the store and the raw queries (same table, same rows). The raw SELECT is `SELECT *" +
          " … WHERE id = $1` with pg's own row parsing (jsonb parsed); the store's get also looks for a" +
          " rotation alias in the same statement (`UNION ALL` with a join on the alias table), bounds the" +
          " call with its timeout, and builds the record. PostgreSQL runs on the same machine (loopback)" +
          " with its default settings (commits fsync).",
      ],
    };
  } finally {
    await pool
      .query(
        `DROP TABLE IF EXISTS "${table}", "${table}_aliases", "${table}_locks", "${table}_migrations";
         DROP SEQUENCE IF EXISTS "${table}_fence_seq"`,
      )
      .catch(() => undefined);
    await sessions.close().catch(() => undefined);
    await pool.end().catch(() => undefined);
  }
}
