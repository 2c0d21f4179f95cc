import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { newId } from "../src/core/tokens.js";
import { createSessions, openStore } from "../src/index.js";
import { runTs } from "./helpers/processes.js";
import { startRedisCluster } from "./helpers/redis-cluster.js";
import { REDIS_URL } from "./helpers/services.js";
import { dropStoreTables, POSTGRES_URL, uniqueTable } from "./stores/postgres-support.js";

const WORKER = "test/workers/update-worker.ts";
const dir = mkdtempSync(join(tmpdir(), "stowage-mp-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** 4 processes × 100 parallel update()s of one key through the public API must end at exactly 400. */
async function fourByHundred(url: string, scope?: string): Promise<void> {
  const options =
    scope === undefined ? {} : url.startsWith("postgres") ? { table: scope } : { prefix: scope };
  const sessions = createSessions<{ n: number }>({ store: await openStore(url, options) });
  try {
    const session = sessions.create();
    await session.save();
    const outputs = await Promise.all(
      Array.from({ length: 4 }, () => runTs(WORKER, [url, session.token, "100", ...(scope ? [scope] : [])])),
    );
    for (const out of outputs) expect(JSON.parse(out).done).toBe(100);
    const after = await sessions.load(session.token);
    expect(after!.get("n")).toBe(400);
  } finally {
    await sessions.close();
  }
}

/** `end()` in a child process must reach an `ended` listener here within 1 s. */
async function endSeenAcross(url: string, scope?: string): Promise<void> {
  const options =
    scope === undefined ? {} : url.startsWith("postgres") ? { table: scope } : { prefix: scope };
  const sessions = createSessions({ store: await openStore(url, options) });
  try {
    const seen: { id: string; remote?: boolean; at: number }[] = [];
    sessions.on("ended", (event) => seen.push({ ...event, at: Date.now() }));
    const session = sessions.create({ attributes: { a: 1 } });
    await session.save();
    // Subscribing is asynchronous (LISTEN, SUBSCRIBE); give it its round trip before the child starts.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const out = await runTs("test/workers/end-worker.ts", [url, session.id, ...(scope ? [scope] : [])]);
    const acknowledged = Date.now();
    expect(JSON.parse(out).ended).toBe(true);
    await expect.poll(() => seen.length, { timeout: 1000, interval: 10 }).toBe(1);
    expect(seen[0]).toMatchObject({ id: session.id, remote: true });
    expect(seen[0]!.at - acknowledged).toBeLessThan(1000);
    expect(await sessions.load(session.token)).toBeNull();
  } finally {
    await sessions.close();
  }
}

/** Runs `fn` on a fresh PostgresStore table name and drops what the store made there afterwards. */
async function withTable(label: string, fn: (table: string) => Promise<void>): Promise<void> {
  const table = uniqueTable(label);
  try {
    await fn(table);
  } finally {
    const { default: pg } = await import("pg");
    const pool = new pg.Pool({ connectionString: POSTGRES_URL });
    await dropStoreTables(pool, table);
    await pool.end();
  }
}

describe("end() in one process is seen by an ended listener in another", () => {
  it("Redis", () => endSeenAcross(REDIS_URL, `stowage-ev-${newId()}:`), 60_000);
  it("PostgreSQL", () => withTable("ev", (table) => endSeenAcross(POSTGRES_URL, table)), 60_000);
  it("SQLite (events table polled)", () => endSeenAcross(`sqlite:${join(dir, "ev.db")}`), 60_000);
});

describe("4 processes × 100 parallel update() of one key", () => {
  it("SQLite (one file)", async () => {
    await fourByHundred(`sqlite:${join(dir, "mp.db")}`);
  }, 120_000);

  it("Redis", async () => {
    await fourByHundred(REDIS_URL, `stowage-mp-${newId()}:`);
  }, 120_000);

  it("Redis Cluster (3 test-owned masters)", async () => {
    const cluster = await startRedisCluster(3);
    try {
      await fourByHundred(`redis+cluster://${cluster.seeds}`, `stowage-mp-${newId()}:`);
    } finally {
      await cluster.stop();
    }
  }, 180_000);

  it("PostgreSQL", () => withTable("mp", (table) => fourByHundred(POSTGRES_URL, table)), 120_000);
});
