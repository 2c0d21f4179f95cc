import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectCode, makeRecord, sleep, waitFor } from "../../src/conformance/index.js";
import { StowageError } from "../../src/core/errors.js";
import type { StoreEvent } from "../../src/core/store.js";
import { PostgresStore } from "../../src/stores/postgres/index.js";
import { TestPostgres } from "./postgres-server.js";

const TIMEOUT_MS = 1000;
// Room for the event loop and the OS beyond the store's own bound; a hang would blow far past it.
const SLACK_MS = 1500;

describe("postgres faults (test-owned server)", () => {
  let server: TestPostgres | undefined;
  const stores: PostgresStore[] = [];
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);

  const open = () => {
    const store = new PostgresStore({
      connectionString: server!.url,
      timeoutMs: TIMEOUT_MS,
      sweepIntervalMs: 0,
    });
    stores.push(store);
    return store;
  };

  /** Runs a call and reports how it ended and how long it took. */
  const timed = async (call: () => Promise<unknown>) => {
    const started = Date.now();
    try {
      await call();
      return { ok: true, code: undefined, ms: Date.now() - started };
    } catch (error) {
      const code = error instanceof StowageError ? error.code : `not a StowageError: ${String(error)}`;
      return { ok: false, code, ms: Date.now() - started };
    }
  };

  beforeAll(async () => {
    process.on("unhandledRejection", onUnhandled);
    process.on("uncaughtException", onUnhandled);
    server = await TestPostgres.create();
  });

  afterAll(async () => {
    await Promise.all(stores.map((s) => s.close().catch(() => undefined)));
    await server?.destroy();
    process.off("unhandledRejection", onUnhandled);
    process.off("uncaughtException", onUnhandled);
  });

  it("SIGKILL mid-traffic: calls fail fast with STORE_UNAVAILABLE; after restart the same store works and every acknowledged write is there", {
    timeout: 60_000,
  }, async () => {
    const store = open();
    const records = Array.from({ length: 20 }, () => makeRecord({ attributes: { seed: true } }));
    for (const record of records) await store.insert(record);

    const acked: { id: string; key: string }[] = [];
    const ackedInserts: string[] = [];
    const failures: { code: string | undefined; ms: number }[] = [];
    let running = true;
    let seq = 0;
    const loop = async () => {
      while (running) {
        const n = seq++;
        if (n % 10 === 0) {
          const fresh = makeRecord({ attributes: { n } });
          const result = await timed(() => store.insert(fresh));
          if (result.ok) ackedInserts.push(fresh.id);
          else failures.push(result);
        } else {
          const id = records[n % records.length]!.id;
          const key = `k${n}`;
          const result = await timed(() => store.commit(id, { set: { [key]: n } }));
          if (result.ok) acked.push({ id, key });
          else failures.push(result);
        }
        if (failures.length > 0) await sleep(20);
      }
    };
    const loops = Array.from({ length: 8 }, loop);
    await waitFor(() => acked.length >= 300, 10_000, "traffic");
    await server!.kill();
    const ackedAtKill = acked.length;
    await sleep(2 * TIMEOUT_MS);
    running = false;
    await Promise.all(loops);

    expect(failures.length).toBeGreaterThan(0);
    for (const failure of failures) {
      expect(failure.code).toBe("STORE_UNAVAILABLE");
      expect(failure.ms).toBeLessThan(TIMEOUT_MS + SLACK_MS);
    }
    // In-flight calls may still have been acknowledged just before the processes died; nothing after.
    expect(acked.length - ackedAtKill).toBeLessThanOrEqual(8);

    // Down: every kind of call reports the outage within the bound.
    for (const call of [
      () => store.get(records[0]!.id),
      () => store.listByUser("nobody"),
      () => store.lock("x", 1000),
      () => store.publish({ type: "ended", id: "x", at: Date.now() }),
      () => store.subscribe(() => undefined),
    ]) {
      const result = await timed(call);
      expect(result).toMatchObject({ ok: false, code: "STORE_UNAVAILABLE" });
      expect(result.ms).toBeLessThan(TIMEOUT_MS + SLACK_MS);
    }

    await server!.start();
    // The same store object, with no reconnect call: its first request after the restart succeeds.
    expect(await store.commit(records[0]!.id, { set: { after: true } })).toBeGreaterThan(1);

    const byId = new Map<string, Set<string>>();
    for (const record of records) {
      const got = await store.get(record.id);
      expect(got).toBeDefined();
      byId.set(record.id, new Set(Object.keys(got!.attributes)));
    }
    const missing = acked.filter(({ id, key }) => !byId.get(id)!.has(key));
    expect(missing).toEqual([]);
    for (const id of ackedInserts) expect(await store.get(id)).toBeDefined();
    console.info(
      `postgres faults: ${acked.length} acknowledged commits and ${ackedInserts.length} inserts all present ` +
        `after SIGKILL + restart; ${failures.length} calls failed fast (max ${Math.max(...failures.map((f) => f.ms))} ms)`,
    );
    expect(unhandled).toEqual([]);
  });

  it("a frozen server (SIGSTOP): calls reject with STORE_UNAVAILABLE within the timeout; after SIGCONT it works", {
    timeout: 30_000,
  }, async () => {
    const store = open();
    const record = makeRecord();
    await store.insert(record);
    server!.signal("SIGSTOP");
    try {
      const results = await Promise.all([
        timed(() => store.get(record.id)),
        timed(() => store.commit(record.id, { set: { a: 1 } })),
        timed(() => open().get(record.id)),
      ]);
      for (const result of results) {
        expect(result).toMatchObject({ ok: false, code: "STORE_UNAVAILABLE" });
        expect(result.ms).toBeLessThan(TIMEOUT_MS + SLACK_MS);
      }
    } finally {
      server!.signal("SIGCONT");
    }
    expect(await store.commit(record.id, { set: { b: 2 } })).toBeGreaterThan(1);
    expect((await store.get(record.id))?.attributes.b).toBe(2);
    expect(unhandled).toEqual([]);
  });

  it("the LISTEN connection comes back after a server restart", { timeout: 60_000 }, async () => {
    const subscriber = open();
    const received: StoreEvent[] = [];
    const unsubscribe = await subscriber.subscribe((event) => received.push(event));
    await server!.kill();
    await server!.start();
    // Published by another store, so it can only arrive through the re-established LISTEN; NOTIFY is not
    // durable, so keep publishing until one gets through.
    const publisher = open();
    const id = makeRecord().id;
    await waitFor(
      async () => {
        await publisher.publish({ type: "revoked", id, at: Date.now() }).catch(() => undefined);
        return received.some((e) => e.id === id);
      },
      15_000,
      "event after restart",
    );
    await unsubscribe();
    expect(unhandled).toEqual([]);
  });

  it("a subscribe while the server is down rejects; the store needs nothing else to work once it is back", {
    timeout: 60_000,
  }, async () => {
    const store = open();
    await store.get("warm-up");
    await server!.kill();
    await expectCode(
      store.subscribe(() => undefined),
      "STORE_UNAVAILABLE",
    );
    await server!.start();
    const received: StoreEvent[] = [];
    const unsubscribe = await store.subscribe((event) => received.push(event));
    const event: StoreEvent = { type: "ended", id: makeRecord().id, at: Date.now() };
    await open().publish(event);
    expect(await waitFor(() => received.find((e) => e.id === event.id), 2000, "event")).toEqual(event);
    await unsubscribe();
    expect(unhandled).toEqual([]);
  });
});
