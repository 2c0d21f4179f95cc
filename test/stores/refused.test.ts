import { afterAll, describe, expect, it } from "vitest";
import { makeRecord, waitFor } from "../../src/conformance/helpers.js";
import { isStowageError } from "../../src/core/errors.js";
import type { SessionStore } from "../../src/core/store.js";
import { PostgresStore } from "../../src/stores/postgres/index.js";
import { RedisStore } from "../../src/stores/redis/index.js";
import { freePort, startRedisServer, stopRedisServer } from "../helpers/redis-server.js";

// Far above what a refused connection takes and far below the timeout: a call that waited for the
// timeout cannot pass for a fast failure, however slow the machine.
const TIMEOUT_MS = 8_000;
const FAST_MS = 2_000;

const stores: SessionStore[] = [];
afterAll(async () => {
  await Promise.allSettled(stores.map((store) => store.close()));
});

/** How long a call took to reject, and with what. */
async function rejection(call: () => Promise<unknown>): Promise<{ ms: number; error: unknown }> {
  const started = performance.now();
  try {
    await call();
  } catch (error) {
    return { ms: performance.now() - started, error };
  }
  throw new Error("the call succeeded while nothing listens");
}

async function refusedCalls(store: SessionStore): Promise<number[]> {
  const record = makeRecord();
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    for (const call of [
      () => store.get(record.id),
      () => store.insert(record),
      () => store.delete(record.id),
    ]) {
      const { ms, error } = await rejection(call);
      expect(isStowageError(error, "STORE_UNAVAILABLE"), String(error)).toBe(true);
      times.push(ms);
    }
    await new Promise((resolve) => setTimeout(resolve, 60));
  }
  return times;
}

describe("a refused connection fails fast while the store reconnects in the background", () => {
  it("Redis: every call rejects at once, then the same store works once a server listens", async () => {
    const port = await freePort();
    const store = new RedisStore({
      url: `redis://127.0.0.1:${port}`,
      timeoutMs: TIMEOUT_MS,
      prefix: "refused:",
    });
    stores.push(store);
    const times = await refusedCalls(store);
    console.log(`redis refused: slowest ${Math.max(...times).toFixed(1)} ms of ${times.length} calls`);
    for (const ms of times) expect(ms).toBeLessThan(FAST_MS);
    const server = await startRedisServer(port);
    try {
      const record = makeRecord();
      await waitFor(
        async () =>
          store.insert(record).then(
            () => true,
            () => false,
          ),
        10_000,
        "reconnect",
      );
      expect(await store.get(record.id)).toEqual(record);
    } finally {
      await store.close();
      await stopRedisServer(server);
    }
  });

  it("PostgreSQL: every call rejects at once", async () => {
    const port = await freePort();
    const store = new PostgresStore({
      connectionString: `postgres://postgres@127.0.0.1:${port}/test`,
      timeoutMs: TIMEOUT_MS,
    });
    stores.push(store);
    const times = await refusedCalls(store);
    console.log(`postgres refused: slowest ${Math.max(...times).toFixed(1)} ms of ${times.length} calls`);
    for (const ms of times) expect(ms).toBeLessThan(FAST_MS);
  });
});
