import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { newId } from "../src/core/tokens.js";
import { createSessions, openStore } from "../src/index.js";
import { runTs } from "./helpers/processes.js";
import { startRedisCluster } from "./helpers/redis-cluster.js";

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

describe("4 processes × 100 parallel update() of one key", () => {
  it("SQLite (one file)", async () => {
    await fourByHundred(`sqlite:${join(dir, "mp.db")}`);
  }, 120_000);

  it("Redis", async () => {
    await fourByHundred("redis://127.0.0.1:6379", `stowage-mp-${newId()}:`);
  }, 120_000);

  it("Redis Cluster (3 test-owned masters)", async () => {
    const cluster = await startRedisCluster(3);
    try {
      await fourByHundred(`redis+cluster://${cluster.seeds}`, `stowage-mp-${newId()}:`);
    } finally {
      await cluster.stop();
    }
  }, 180_000);

  it("PostgreSQL", async () => {
    const table = `stowage_mp_${newId()
      .replace(/[^A-Za-z0-9]/g, "")
      .toLowerCase()
      .slice(0, 12)}`;
    try {
      await fourByHundred("postgres://postgres@127.0.0.1:5432/test", table);
    } finally {
      const { default: pg } = await import("pg");
      const client = new pg.Client("postgres://postgres@127.0.0.1:5432/test");
      await client.connect();
      const tables = await client.query<{ tablename: string }>(
        "select tablename from pg_tables where tablename like $1",
        [`${table}%`],
      );
      for (const { tablename } of tables.rows)
        await client.query(`drop table if exists "${tablename}" cascade`);
      await client.end();
    }
  }, 120_000);
});
