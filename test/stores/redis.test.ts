import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import {
  expectCode,
  makeRecord,
  newUserId,
  runStoreConformance,
  waitFor,
} from "../../src/conformance/index.js";
import type { StoreEvent } from "../../src/core/store.js";
import { createSessions, StowageError } from "../../src/index.js";
import { RedisStore } from "../../src/stores/redis/index.js";
import { RENAME_BEGIN, RENAME_FINISH, runScript } from "../../src/stores/redis/scripts.js";
import { runTs } from "../helpers/processes.js";
import { vitest } from "../helpers/runner.js";
import { REDIS_URL } from "../helpers/services.js";

const prefix = `stowage-test:${randomBytes(6).toString("hex")}:`;
const raw = new Redis(REDIS_URL);
const stores: RedisStore[] = [];

function open(extra: { prefix?: string; timeoutMs?: number } = {}): RedisStore {
  const store = new RedisStore({ url: REDIS_URL, prefix, ...extra });
  stores.push(store);
  return store;
}

afterAll(async () => {
  await Promise.all(stores.map((store) => store.close()));
  // Clean up this run's keys (a test-only SCAN; the store never scans).
  let cursor = "0";
  do {
    const [next, keys] = await raw.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
    if (keys.length > 0) await raw.del(...keys);
    cursor = next;
  } while (cursor !== "0");
  await raw.quit();
});

runStoreConformance(vitest, "redis", () => open());

/** Calls of `name` so far, from INFO commandstats (0 when never called). */
async function commandCalls(name: string): Promise<number> {
  const info = await raw.info("commandstats");
  const match = new RegExp(`^cmdstat_${name}:calls=(\\d+)`, "m").exec(info);
  return match ? Number(match[1]) : 0;
}

/** The code of the StowageError `fn` throws, or undefined when it does not throw one. */
function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    if (error instanceof StowageError) return error.code;
  }
  return undefined;
}

const worker = fileURLToPath(new URL("./workers/redis-update-worker.ts", import.meta.url));
const publisher = fileURLToPath(new URL("./workers/redis-publish-worker.ts", import.meta.url));

describe("redis specifics", () => {
  it("loads a session with its attributes unparsed and parses each on first read", async () => {
    const sessions = createSessions<Record<string, unknown>>({ store: open() });
    const s = sessions.create({ attributes: { cart: [1, 2], theme: "dark", n: 1, big: "x".repeat(100) } });
    await s.save();
    const peeked = await sessions.store.peek!(s.id);
    expect(peeked?.attributes).toEqual({});
    expect(peeked?.encoded).toEqual({
      cart: "[1,2]",
      theme: '"dark"',
      n: "1",
      big: JSON.stringify("x".repeat(100)),
    });

    const a = (await sessions.load(s.token))!;
    expect(a.keys().sort()).toEqual(["big", "cart", "n", "theme"]);
    expect(a.has("cart")).toBe(true);
    const cart = a.get("cart") as number[];
    expect(cart).toEqual([1, 2]);
    expect(a.get("cart")).toBe(cart);
    a.delete("theme");
    a.set("n", 2);
    expect(a.keys().sort()).toEqual(["big", "cart", "n"]);
    await sessions.commit(a);
    const b = (await sessions.load(s.token))!;
    expect([b.get("theme"), b.get("n"), b.get("cart"), b.has("theme")]).toEqual([
      undefined,
      2,
      [1, 2],
      false,
    ]);
  });

  it("counts unparsed attributes against maxAttributesBytes", async () => {
    const sessions = createSessions<Record<string, unknown>>({ store: open(), maxAttributesBytes: 300 });
    const s = sessions.create({ attributes: { big: "x".repeat(200) } });
    await s.save();
    const a = (await sessions.load(s.token))!;
    expect(codeOf(() => a.set("other", "y".repeat(150)))).toBe("ATTRIBUTES_TOO_LARGE");
    a.set("small", 1);
    await sessions.commit(a);
    expect((await sessions.load(s.token))!.get("big")).toBe("x".repeat(200));
  });

  it("a stored attribute that is not JSON fails its read with INVALID_VALUE, not the load", async () => {
    const sessions = createSessions<Record<string, unknown>>({ store: open() });
    const s = sessions.create({ attributes: { good: 1, bad: 2 } });
    await s.save();
    await raw.hset(`${prefix}{${s.id}}`, "a:bad", "{not json");
    const a = (await sessions.load(s.token))!;
    expect(a.get("good")).toBe(1);
    expect(() => a.get("bad")).toThrowError(StowageError);
    expect(codeOf(() => a.get("bad"))).toBe("INVALID_VALUE");
    // The stored text (it could be a secret) appears neither in the message nor in a cause.
    try {
      a.get("bad");
    } catch (error) {
      expect(String((error as Error).message)).not.toContain("not json");
      expect((error as Error).cause).toBeUndefined();
    }
  });

  it("stores a session as one hash: meta fields plus one a:<key> field per attribute", async () => {
    const store = open();
    const record = makeRecord({ userId: newUserId(), attributes: { cart: [1, 2], theme: "dark" } });
    await store.insert(record);
    const hash = await raw.hgetall(`${prefix}{${record.id}}`);
    expect(hash["a:cart"]).toBe("[1,2]");
    expect(hash["a:theme"]).toBe('"dark"');
    expect(hash.v).toBe("1");
    expect(hash.user).toBe(record.userId);
    expect(hash.verifier).toBe(record.verifier);
    expect(Object.keys(hash).filter((f) => f.startsWith("a:"))).toHaveLength(2);
  });

  it("a commit writes only the changed fields", async () => {
    const store = open();
    const record = makeRecord({ attributes: { a: 1, b: "keep", c: { deep: true } } });
    await store.insert(record);
    const key = `${prefix}{${record.id}}`;
    // Plant a marker in field b behind the store's back: a whole-hash rewrite would erase it.
    await raw.hset(key, "a:b", '"planted"');
    const before = await raw.hgetall(key);
    await store.commit(record.id, { set: { a: 2 }, unset: ["c"] });
    const after = await raw.hgetall(key);
    const changed = Object.keys({ ...before, ...after }).filter((f) => before[f] !== after[f]);
    expect(changed.sort()).toEqual(["a:a", "a:c", "v"]);
    expect(after["a:b"]).toBe('"planted"');
    expect(after["a:c"]).toBeUndefined();
  });

  it("sets a native TTL at min(expiresAt, idleExpiresAt); touch moves it without a version bump", async () => {
    const store = open();
    const now = Date.now();
    const record = makeRecord({ expiresAt: now + 3_600_000, idleExpiresAt: now + 600_000 });
    await store.insert(record);
    const key = `${prefix}{${record.id}}`;
    const ttl = await raw.pttl(key);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(600_000);
    expect(Number(await raw.pexpiretime(key))).toBe(now + 600_000);
    await store.touch(record.id, now + 1_200_000);
    expect(Number(await raw.pexpiretime(key))).toBe(now + 1_200_000);
    await store.commit(record.id, { meta: { expiresAt: now + 900_000 } });
    expect(Number(await raw.pexpiretime(key))).toBe(now + 900_000);
    expect(await raw.hget(key, "v")).toBe("2");
    // The common commit (attributes and an idle refresh): the TTL follows idle, never past expiresAt.
    await store.commit(record.id, { set: { n: 1 }, meta: { idleExpiresAt: now + 700_000 } });
    expect(Number(await raw.pexpiretime(key))).toBe(now + 700_000);
    await store.commit(record.id, { set: { n: 2 }, meta: { idleExpiresAt: now + 2_000_000 } });
    expect(Number(await raw.pexpiretime(key))).toBe(now + 900_000);
    await store.commit(record.id, { set: { n: 3 } });
    expect(Number(await raw.pexpiretime(key))).toBe(now + 900_000);
    expect(await raw.hget(key, "v")).toBe("5");
    expect(await raw.hget(key, "idle")).toBe(String(now + 2_000_000));
  });

  it("an alias expires natively at the end of its grace window", async () => {
    const store = open();
    const old = makeRecord();
    await store.insert(old);
    await store.rename(old.id, makeRecord(), { graceMs: 30_000 });
    const ttl = await raw.pttl(`${prefix}{${old.id}}`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(30_000);
  });

  it("never uses KEYS or SCAN during a full workload", async () => {
    const store = open();
    const keysBefore = await commandCalls("keys");
    const scanBefore = await commandCalls("scan");
    const evalshaBefore = await commandCalls("evalsha");
    const userId = newUserId();
    const records = Array.from({ length: 20 }, () => makeRecord({ userId }));
    for (const record of records) await store.insert(record);
    for (const record of records) {
      await store.get(record.id);
      await store.commit(record.id, { set: { n: 1 } });
      await store.touch(record.id, Date.now() + 60_000);
    }
    await store.rename(records[0]!.id, makeRecord({ userId }), { graceMs: 1000 });
    await store.consume(records[1]!.id, () => true);
    await store.delete(records[2]!.id);
    await store.listByUser(userId);
    await store.deleteByUser(userId, { exceptId: records[3]!.id });
    const lock = await store.lock(records[3]!.id, 1000);
    await lock?.release();
    await store.sweep(Date.now());
    expect(await commandCalls("keys")).toBe(keysBefore);
    expect(await commandCalls("scan")).toBe(scanBefore);
    // The counters do move: the workload ran its scripts through EVALSHA.
    expect(await commandCalls("evalsha")).toBeGreaterThan(evalshaBefore + 60);
  });

  it("keeps the user index bounded: entries go with their records, the key expires with the last", async () => {
    const store = open();
    const userId = newUserId();
    const now = Date.now();
    const record = makeRecord({ userId, expiresAt: now + 50_000 });
    await store.insert(record);
    const indexKey = `${prefix}u:{${userId}}`;
    expect(await raw.zscore(indexKey, record.id)).toBe(String(now + 50_000));
    expect(Number(await raw.pexpiretime(indexKey))).toBe(now + 50_000);
    // A record that vanished behind the index's back is pruned on the next read.
    await raw.del(`${prefix}{${record.id}}`);
    expect(await store.listByUser(userId)).toEqual([]);
    expect(await raw.exists(indexKey)).toBe(0);
  });

  it("a commit racing a rename in flight gets VERSION_CONFLICT, then lands on the new id", async () => {
    const store = open();
    const old = makeRecord({ attributes: { n: 0 } });
    await store.insert(old);
    // Mark the record as a rename in progress, exactly as step 1 of rename does.
    const key = `${prefix}{${old.id}}`;
    await raw.hset(key, "ren", "someone-else", "renu", String(Date.now() + 60_000));
    await expectCode(store.commit(old.id, { set: { n: 1 } }), "VERSION_CONFLICT");
    expect(await store.consume(old.id, () => true)).toBeUndefined();
    await expectCode(store.rename(old.id, makeRecord(), { graceMs: 0 }), "VERSION_CONFLICT");
    expect((await store.get(old.id))?.attributes).toEqual({ n: 0 });
    // A stale mark (its renamer died) is void: the next commit clears it.
    await raw.hset(key, "renu", String(Date.now() - 1));
    expect(await store.commit(old.id, { set: { n: 1 } })).toBe(2);
    expect(await raw.hexists(key, "ren")).toBe(0);
  });

  it("rename steps: a voided mark makes FINISH fail and the voiding commit is kept", async () => {
    const store = open();
    const old = makeRecord({ attributes: { n: 0 } });
    await store.insert(old);
    const key = `${prefix}{${old.id}}`;
    // Step 1 of a renamer that then stalls past its deadline.
    const begun = await runScript(raw, RENAME_BEGIN, [key], ["", Date.now(), "stalled", Date.now() + 50]);
    expect(begun).toEqual([0, "1", old.verifier, ""]);
    await expectCode(store.commit(old.id, { set: { n: 1 } }), "VERSION_CONFLICT");
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await store.commit(old.id, { set: { n: 1 } })).toBe(2);
    // The stalled renamer wakes up: its commit point refuses, the acknowledged commit survives.
    expect(await runScript(raw, RENAME_FINISH, [key], ["stalled", makeRecord().id, 0])).toBe(2);
    expect((await store.get(old.id))?.attributes).toEqual({ n: 1 });
  });

  it("rename steps: a delete between the steps makes FINISH report the session ended", async () => {
    const store = open();
    const old = makeRecord();
    await store.insert(old);
    const key = `${prefix}{${old.id}}`;
    await runScript(raw, RENAME_BEGIN, [key], ["", Date.now(), "mine", Date.now() + 60_000]);
    expect(await store.delete(old.id)).toBe(true);
    expect(await runScript(raw, RENAME_FINISH, [key], ["mine", makeRecord().id, Date.now() + 1000])).toBe(1);
    expect(await raw.exists(key)).toBe(0);
  });

  it("rename refuses an id that is taken and leaves the old record committable", async () => {
    const store = open();
    const old = makeRecord();
    const taken = makeRecord();
    await store.insert(old);
    await store.insert(taken);
    await expectCode(store.rename(old.id, { ...makeRecord(), id: taken.id }, { graceMs: 0 }), "DUPLICATE_ID");
    expect(await store.get(taken.id)).toEqual(taken);
    expect(await store.commit(old.id, { set: { x: 1 } }, { ifVersion: 1 })).toBe(2);
  });

  it("rejects a prefix with hash-tag braces", () => {
    expect(() => new RedisStore({ url: REDIS_URL, prefix: "bad{" })).toThrow(/prefix/);
  });

  it("an event published in another process reaches a subscriber here within 1 s", async () => {
    const store = open();
    const received: { event: StoreEvent; at: number }[] = [];
    const unsubscribe = await store.subscribe((event) => received.push({ event, at: Date.now() }));
    try {
      const id = makeRecord().id;
      const out = await runTs(publisher, ["standalone", REDIS_URL, prefix, id]);
      const { publishedAt } = JSON.parse(out.trim().split("\n").pop()!) as { publishedAt: number };
      const hit = (await waitFor(
        () => received.find((r) => r.event.id === id),
        5000,
        "cross-process event",
      ))!;
      expect(hit.event).toMatchObject({ type: "ended", id, userId: "worker-user" });
      expect(hit.at - publishedAt).toBeLessThan(1000);
    } finally {
      await unsubscribe();
    }
  });

  it("4 processes x 100 parallel read-modify-write updates of one key end at exactly 400", {
    timeout: 120_000,
  }, async () => {
    const store = open();
    const record = makeRecord({ attributes: { n: 0 } });
    await store.insert(record);
    const started = Date.now();
    const outputs = await Promise.all(
      Array.from({ length: 4 }, () => runTs(worker, ["standalone", REDIS_URL, prefix, record.id, "100"])),
    );
    const elapsed = Date.now() - started;
    const got = await store.get(record.id);
    expect(got?.attributes.n).toBe(400);
    expect(got?.version).toBe(401);
    const stats = outputs.map((o) => JSON.parse(o.trim().split("\n").pop()!) as { attempts: number });
    const attempts = stats.reduce((sum, s) => sum + s.attempts, 0);
    console.log(`redis standalone: 400 contended updates in ${elapsed} ms, ${attempts} attempts`);
  });
});
