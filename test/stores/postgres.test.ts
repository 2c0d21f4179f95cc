import { fileURLToPath } from "node:url";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  expectCode,
  makeRecord,
  newUserId,
  runStoreConformance,
  sleep,
  waitFor,
} from "../../src/conformance/index.js";
import { StowageError } from "../../src/core/errors.js";
import type { StoreEvent } from "../../src/core/store.js";
import { PostgresStore } from "../../src/stores/postgres/index.js";
import { SCHEMA_VERSION } from "../../src/stores/postgres/schema.js";
import { runTs } from "../helpers/processes.js";
import { vitest } from "../helpers/runner.js";
import { dropStoreTables, POSTGRES_URL, uniqueTable } from "./postgres-support.js";

const table = uniqueTable("conf");
const tables = [table];
const admin = new pg.Pool({ connectionString: POSTGRES_URL, max: 4 });
const stores: PostgresStore[] = [];

/** A store on `name` that afterAll closes (and whose tables it drops). */
function open(name = table, options: Partial<ConstructorParameters<typeof PostgresStore>[0]> = {}) {
  if (!tables.includes(name)) tables.push(name);
  const store = new PostgresStore({ connectionString: POSTGRES_URL, table: name, ...options });
  stores.push(store);
  return store;
}

afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
  for (const name of tables) await dropStoreTables(admin, name);
  await admin.end();
});

runStoreConformance(vitest, "postgres", () => new PostgresStore({ connectionString: POSTGRES_URL, table }));

const worker = (name: string) => fileURLToPath(new URL(`./workers/${name}`, import.meta.url));

describe("postgres specifics", () => {
  let store: PostgresStore;
  beforeAll(async () => {
    store = open();
    await store.sweep(0);
  });

  it("stores attributes as a jsonb object and merges commits into it per key", async () => {
    const record = makeRecord({ attributes: { keep: 1, drop: "x" } });
    await store.insert(record);
    const read = await store.get(record.id);
    // Another writer changes a key between this client's read and its commit.
    await admin.query(`UPDATE "${table}" SET attributes = attributes || '{"raw":true}' WHERE id = $1`, [
      record.id,
    ]);
    await store.commit(record.id, { set: { mine: [1, 2] }, unset: ["drop"] }, {});
    const { rows } = await admin.query(
      `SELECT pg_typeof(attributes)::text AS type, jsonb_typeof(attributes) AS kind, attributes, version
         FROM "${table}" WHERE id = $1`,
      [record.id],
    );
    expect(rows[0]).toEqual({
      type: "jsonb",
      kind: "object",
      attributes: { keep: 1, raw: true, mine: [1, 2] },
      version: String((read?.version ?? 0) + 1),
    });
  });

  it("keeps expiry = least(expiresAt, idleExpiresAt) and user_id in columns the indexes use", async () => {
    const userId = newUserId();
    const now = Date.now();
    const record = makeRecord({ userId, expiresAt: now + 50_000, idleExpiresAt: now + 90_000 });
    await store.insert(record);
    await store.touch(record.id, now + 10_000);
    const { rows } = await admin.query(`SELECT expiry, user_id FROM "${table}" WHERE id = $1`, [record.id]);
    expect(rows[0]).toEqual({ expiry: String(now + 10_000), user_id: userId });
    const indexes = await admin.query(`SELECT indexdef FROM pg_indexes WHERE tablename = $1`, [table]);
    const defs = indexes.rows.map((r: { indexdef: string }) => r.indexdef).join("\n");
    expect(defs).toMatch(/\(expiry\)/);
    expect(defs).toMatch(/\(user_id\)/);
  });

  it("a commit waiting on a row lock rejects with STORE_UNAVAILABLE within its timeout, then works", async () => {
    const quick = open(table, { timeoutMs: 300, sweepIntervalMs: 0 });
    const record = makeRecord();
    await quick.insert(record);
    const blocker = await admin.connect();
    try {
      await blocker.query("BEGIN");
      await blocker.query(`SELECT 1 FROM "${table}" WHERE id = $1 FOR UPDATE`, [record.id]);
      const started = Date.now();
      await expectCode(quick.commit(record.id, { set: { a: 1 } }), "STORE_UNAVAILABLE");
      expect(Date.now() - started).toBeLessThan(300 + 1500);
    } finally {
      await blocker.query("ROLLBACK");
      blocker.release();
    }
    expect(await quick.commit(record.id, { set: { a: 2 } })).toBeGreaterThanOrEqual(2);
    expect((await quick.get(record.id))?.attributes.a).toBe(2);
  });

  it("refuses a string with U+0000 (jsonb cannot hold it) with INVALID_VALUE", async () => {
    const record = makeRecord({ attributes: { a: 1 } });
    await store.insert(record);
    await expectCode(store.commit(record.id, { set: { bad: "a\u0000b" } }), "INVALID_VALUE");
    expect(await store.get(record.id)).toEqual(record);
  });

  it("passes an error thrown by a consume check through unchanged and keeps the record", async () => {
    const record = makeRecord();
    await store.insert(record);
    const boom = new Error("check failed");
    await expect(
      store.consume(record.id, () => {
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(await store.get(record.id)).toEqual(record);
  });

  it("sweeps in batches along the expiry index and drops expired aliases and lock leases", async () => {
    const name = uniqueTable("sweep");
    const small = open(name, { sweepBatch: 3, sweepIntervalMs: 0 });
    const now = Date.now();
    const expired = Array.from({ length: 10 }, () => makeRecord({ expiresAt: now - 1000 }));
    const live = [makeRecord(), makeRecord()];
    for (const record of [...expired, ...live]) await small.insert(record);
    const renamed = makeRecord();
    await small.rename(live[0]!.id, renamed, { graceMs: 100 });
    const lock = await small.lock("sweep-lock", 100);
    await sleep(150);
    expect(await small.sweep(Date.now())).toBe(10);
    const count = async (sql: string) => Number((await admin.query(sql)).rows[0].n);
    expect(await count(`SELECT count(*) AS n FROM "${name}"`)).toBe(2);
    expect(await count(`SELECT count(*) AS n FROM "${name}_aliases"`)).toBe(0);
    expect(await count(`SELECT count(*) AS n FROM "${name}_locks"`)).toBe(0);
    // The fence still moves forward after the swept row is gone.
    const next = await small.lock("sweep-lock", 10_000);
    expect(next!.fence).toBeGreaterThan(lock!.fence);
    await next!.release();
  });

  it("sweeps on its own timer", async () => {
    const name = uniqueTable("timer");
    const timed = open(name, { sweepIntervalMs: 100 });
    const record = makeRecord({ expiresAt: Date.now() - 1 });
    await timed.insert(record);
    await waitFor(
      async () => Number((await admin.query(`SELECT count(*) AS n FROM "${name}"`)).rows[0].n) === 0,
      3000,
      "background sweep",
    );
  });

  it("delivers events on a channel per table: another table's store hears nothing", async () => {
    const other = open(uniqueTable("chan"), { sweepIntervalMs: 0 });
    const peer = open(table, { sweepIntervalMs: 0 });
    const mine: StoreEvent[] = [];
    const theirs: StoreEvent[] = [];
    const offMine = await store.subscribe((e) => mine.push(e));
    const offTheirs = await other.subscribe((e) => theirs.push(e));
    try {
      const event: StoreEvent = { type: "revoked", id: makeRecord().id, at: Date.now() };
      // Published by a second store object on the same table, so it can only arrive through NOTIFY.
      await peer.publish(event);
      expect(await waitFor(() => mine.find((e) => e.id === event.id), 2000, "event")).toEqual(event);
      await sleep(100);
      expect(theirs).toEqual([]);
    } finally {
      await offMine();
      await offTheirs();
    }
  });

  it("an event published by another process arrives within 1 s", async () => {
    const received: { event: StoreEvent; at: number }[] = [];
    const off = await store.subscribe((event) => received.push({ event, at: Date.now() }));
    try {
      const id = makeRecord().id;
      await runTs(worker("postgres-publish-worker.ts"), [POSTGRES_URL, table, id]);
      const hit = (await waitFor(
        () => received.find((r) => r.event.id === id),
        2000,
        "cross-process event",
      ))!;
      expect(hit.event).toEqual({ type: "ended", id, userId: "worker", at: hit.event.at });
      expect(hit.at - hit.event.at).toBeLessThan(1000);
    } finally {
      await off();
    }
  });

  it("4 processes x 100 parallel read-modify-write updates of one key end at exactly 400", {
    timeout: 120_000,
  }, async () => {
    const record = makeRecord({ attributes: { count: 0 } });
    await store.insert(record);
    const started = Date.now();
    const outputs = await Promise.all(
      Array.from({ length: 4 }, () =>
        runTs(worker("postgres-update-worker.ts"), [POSTGRES_URL, table, record.id, "100"]),
      ),
    );
    const elapsed = Date.now() - started;
    const got = await store.get(record.id);
    expect(got?.attributes.count).toBe(400);
    expect(got?.version).toBe(401);
    const summaries = outputs.map((o) => JSON.parse(o) as { attempts: number; ms: number });
    const attempts = summaries.reduce((sum, s) => sum + s.attempts, 0);
    console.info(`postgres: 400 contended updates from 4 processes in ${elapsed} ms, ${attempts} attempts`);
  });
});

describe("postgres schema and migrations", () => {
  it("migrates idempotently: a second store on the same table opens it and the version row is single", async () => {
    const name = uniqueTable("mig");
    const first = open(name, { sweepIntervalMs: 0 });
    const record = makeRecord({ attributes: { kept: true } });
    await first.insert(record);
    await first.close();
    const second = open(name, { sweepIntervalMs: 0 });
    expect(await second.get(record.id)).toEqual(record);
    const { rows } = await admin.query(`SELECT version FROM "${name}_migrations" ORDER BY version`);
    expect(rows).toEqual(Array.from({ length: SCHEMA_VERSION }, (_, i) => ({ version: i + 1 })));
  });

  it("a table at schema version 1 (before outboxes) migrates to 2 and keeps its sessions", async () => {
    const name = uniqueTable("v1");
    const first = open(name, { sweepIntervalMs: 0 });
    const record = makeRecord({ attributes: { kept: true } });
    await first.insert(record);
    await first.close();
    // What a table written by stowage before the outbox looks like.
    await admin.query(`DROP TABLE "${name}_outbox", "${name}_outbox_heads"`);
    await admin.query(`DELETE FROM "${name}_migrations" WHERE version = 2`);
    const second = open(name, { sweepIntervalMs: 0 });
    expect(await second.get(record.id)).toEqual(record);
    expect(await second.outboxAppend(record.id, ["after upgrade"], { maxMessages: 10, maxBytes: 1000 })).toBe(
      1,
    );
    expect((await second.outboxRead(record.id, 0)).messages).toEqual([{ seq: 1, data: "after upgrade" }]);
    const { rows } = await admin.query(`SELECT version FROM "${name}_migrations" ORDER BY version`);
    expect(rows).toEqual([{ version: 1 }, { version: 2 }]);
  });

  it("several stores migrating a fresh table at once all succeed, and each step runs once", async () => {
    const name = uniqueTable("race");
    const racers = Array.from({ length: 6 }, () => open(name, { sweepIntervalMs: 0 }));
    const records = racers.map(() => makeRecord());
    await Promise.all(racers.map((s, i) => s.insert(records[i]!)));
    for (const [i, s] of racers.entries())
      expect(await s.get(records[(i + 1) % records.length]!.id)).toBeDefined();
    const { rows } = await admin.query(`SELECT version FROM "${name}_migrations" ORDER BY version`);
    expect(rows).toEqual(Array.from({ length: SCHEMA_VERSION }, (_, i) => ({ version: i + 1 })));
  });

  it("refuses a schema newer than it understands with CONFIG_INVALID", async () => {
    const name = uniqueTable("newer");
    const first = open(name, { sweepIntervalMs: 0 });
    await first.get("x");
    await admin.query(`INSERT INTO "${name}_migrations" (version, description) VALUES ($1, 'future')`, [
      SCHEMA_VERSION + 1,
    ]);
    await expectCode(open(name, { sweepIntervalMs: 0 }).get("x"), "CONFIG_INVALID");
  });

  it.each(["Upper", "bad-name", 'x"; DROP TABLE users; --', "1starts_with_digit", "", "a".repeat(41)])(
    "rejects the table name %j with CONFIG_INVALID",
    (name) => {
      expect(() => new PostgresStore({ connectionString: POSTGRES_URL, table: name })).toThrowError(
        StowageError,
      );
      try {
        new PostgresStore({ connectionString: POSTGRES_URL, table: name });
      } catch (error) {
        expect((error as StowageError).code).toBe("CONFIG_INVALID");
      }
    },
  );

  it("rejects bad options with CONFIG_INVALID", () => {
    const pool = new pg.Pool({ connectionString: POSTGRES_URL });
    const codeOf = (fn: () => unknown) => {
      try {
        fn();
      } catch (error) {
        return (error as StowageError).code;
      }
      return "none";
    };
    expect(codeOf(() => new PostgresStore({ pool, connectionString: POSTGRES_URL }))).toBe("CONFIG_INVALID");
    expect(codeOf(() => new PostgresStore({ pool, timeoutMs: 0 }))).toBe("CONFIG_INVALID");
    expect(codeOf(() => new PostgresStore({ pool, sweepIntervalMs: -1 }))).toBe("CONFIG_INVALID");
    return pool.end();
  });

  it("works on a pool passed in (unprepared statements), exposes it, and leaves it open on close", async () => {
    const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 2 });
    const name = uniqueTable("pool");
    tables.push(name);
    const borrowed = new PostgresStore({ pool, table: name, sweepIntervalMs: 0, preparedStatements: false });
    expect(borrowed.pool).toBe(pool);
    const record = makeRecord();
    await borrowed.insert(record);
    await borrowed.close();
    await expectCode(borrowed.get(record.id), "STORE_UNAVAILABLE");
    const { rows } = await pool.query(`SELECT id FROM "${name}"`);
    expect(rows).toEqual([{ id: record.id }]);
    await pool.end();
  });
});
