import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeRecord, newUserId, sleep, waitFor } from "../../src/conformance/index.js";
import { StowageError } from "../../src/core/errors.js";
import type { StoreEvent } from "../../src/core/store.js";
import { RedisStore } from "../../src/stores/redis/index.js";
import { freePort, type RedisProcess, startRedisServer, stopRedisServer } from "../helpers/redis-server.js";

const TIMEOUT = 500;
// Generous: a rejection must come within the store's timeout, plus scheduling slack on a busy machine.
const BOUND = TIMEOUT + 750;
const prefix = `stowage-faults:${randomBytes(6).toString("hex")}:`;

let port = 0;
let server: RedisProcess | undefined;
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
const stores: RedisStore[] = [];

function open(): RedisStore {
  const store = new RedisStore({ url: `redis://127.0.0.1:${port}`, prefix, timeoutMs: TIMEOUT });
  stores.push(store);
  return store;
}

beforeAll(async () => {
  process.on("unhandledRejection", onUnhandled);
  port = await freePort();
  server = await startRedisServer(port);
});

afterAll(async () => {
  await Promise.all(stores.map((store) => store.close()));
  if (server) await stopRedisServer(server);
  process.off("unhandledRejection", onUnhandled);
});

interface Outcome {
  started: number;
  ended: number;
  error?: unknown;
}

async function timed(call: () => Promise<unknown>): Promise<Outcome> {
  const started = Date.now();
  try {
    await call();
    return { started, ended: Date.now() };
  } catch (error) {
    return { started, ended: Date.now(), error };
  }
}

function expectUnavailable(outcome: Outcome, label: string): void {
  expect(outcome.error, `${label} should reject`).toBeInstanceOf(StowageError);
  expect((outcome.error as StowageError).code, label).toBe("STORE_UNAVAILABLE");
  expect(outcome.ended - outcome.started, `${label} took too long`).toBeLessThanOrEqual(BOUND);
}

describe("redis faults", () => {
  it("SIGKILL mid-traffic: pending and new calls reject in time; after a restart the same store works", {
    timeout: 60_000,
  }, async () => {
    const store = open();
    const publisher = open();
    const received: StoreEvent[] = [];
    await store.subscribe((event) => received.push(event));
    const record = makeRecord({ attributes: { n: 0 } });
    await store.insert(record);

    // Traffic: 40 workers, each issuing commits and gets back to back, every call timed.
    let running = true;
    const outcomes: Outcome[] = [];
    const workers = Array.from({ length: 40 }, async (_, w) => {
      for (let i = 0; running; i++) {
        const call =
          i % 2 === 0
            ? () => store.commit(record.id, { set: { [`w${w}`]: i, blob: "x".repeat(2000) } })
            : () => store.get(record.id);
        outcomes.push(await timed(call));
        if (outcomes.at(-1)?.error) await sleep(5);
      }
    });
    await waitFor(() => outcomes.filter((o) => !o.error).length > 200, 10_000, "traffic");

    const killedAt = Date.now();
    server!.child.kill("SIGKILL");
    await server!.exited;
    const deadAt = Date.now();
    await sleep(1500);
    running = false;
    await Promise.all(workers);

    const pendingAtKill = outcomes.filter((o) => o.started < killedAt && o.ended >= killedAt);
    const afterKill = outcomes.filter((o) => o.started >= deadAt);
    expect(pendingAtKill.length).toBeGreaterThan(0);
    expect(afterKill.length).toBeGreaterThan(0);
    for (const o of pendingAtKill) {
      if (o.error) expectUnavailable(o, "a call pending at the kill");
    }
    for (const o of afterKill) expectUnavailable(o, "a call after the kill");
    for (const o of outcomes) expect(o.ended - o.started).toBeLessThanOrEqual(BOUND);
    const slowest = Math.max(...[...pendingAtKill, ...afterKill].map((o) => o.ended - o.started));
    console.log(
      `faults: ${pendingAtKill.length} calls pending at SIGKILL, ${afterKill.length} after; slowest ${slowest} ms`,
    );

    // Every operation, while the server is down.
    const other = makeRecord({ userId: newUserId() });
    const calls: [string, () => Promise<unknown>][] = [
      ["insert", () => store.insert(other)],
      ["get", () => store.get(record.id)],
      ["commit", () => store.commit(record.id, { set: { a: 1 } })],
      ["rename", () => store.rename(record.id, makeRecord(), { graceMs: 1000 })],
      ["consume", () => store.consume(record.id, () => true)],
      ["delete", () => store.delete(record.id)],
      ["touch", () => store.touch(record.id, Date.now() + 1000)],
      ["listByUser", () => store.listByUser("someone")],
      ["deleteByUser", () => store.deleteByUser("someone")],
      ["lock", () => store.lock(record.id, 1000)],
      ["publish", () => store.publish({ type: "ended", id: record.id, at: Date.now() })],
      ["subscribe", () => open().subscribe(() => {})],
    ];
    const down = await Promise.all(calls.map(([, call]) => timed(call)));
    for (const [i, o] of down.entries()) expectUnavailable(o, calls[i]![0]);

    // Back on the same port (empty: no persistence). The same store object recovers by itself.
    server = await startRedisServer(port);
    const fresh = makeRecord({ attributes: { back: true } });
    await waitFor(
      async () => (await timed(() => store.insert(fresh))).error === undefined,
      10_000,
      "recovery",
    );
    expect(await store.get(fresh.id)).toEqual(fresh);
    expect(await store.commit(fresh.id, { set: { after: 1 } })).toBe(2);
    const lock = await store.lock(fresh.id, 1000);
    expect(lock).not.toBeNull();
    await lock!.release();

    // The subscriber connection resubscribed: an event from another store instance arrives.
    const event: StoreEvent = { type: "revoked", id: fresh.id, at: Date.now() };
    await waitFor(
      async () => {
        await publisher.publish(event).catch(() => undefined);
        return received.some((e) => e.id === fresh.id);
      },
      10_000,
      "event after restart",
    );

    expect(unhandled).toEqual([]);
  });

  it("a store whose server was never up rejects within the timeout, then works once it starts", {
    timeout: 30_000,
  }, async () => {
    const otherPort = await freePort({ avoid: [port] });
    const store = new RedisStore({ url: `redis://127.0.0.1:${otherPort}`, prefix, timeoutMs: TIMEOUT });
    stores.push(store);
    const record = makeRecord();
    expectUnavailable(await timed(() => store.insert(record)), "insert with no server");
    expectUnavailable(await timed(() => store.get(record.id)), "get with no server");
    const late = await startRedisServer(otherPort);
    try {
      await waitFor(
        async () => (await timed(() => store.insert(record))).error === undefined,
        10_000,
        "start",
      );
      expect(await store.get(record.id)).toEqual(record);
    } finally {
      await store.close();
      await stopRedisServer(late);
    }
    expect(unhandled).toEqual([]);
  });
});
