import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  expectCode,
  makeRecord,
  newUserId,
  runStoreConformance,
  sleep,
  waitFor,
} from "../../src/conformance/index.js";
import type { StoreEvent } from "../../src/core/store.js";
import { MemoryStore } from "../../src/stores/memory/index.js";
import { vitest } from "../helpers/runner.js";

runStoreConformance(vitest, "memory", () => new MemoryStore());
// The same contract while the timer packs idle records every millisecond or two, so reads, commits,
// renames and expiry meet records in both forms.
runStoreConformance(vitest, "memory, packing every 1 ms", () => new MemoryStore({ sweepIntervalMs: 1 }));

describe("MemoryStore", () => {
  const stores: MemoryStore[] = [];
  const open = (options?: ConstructorParameters<typeof MemoryStore>[0]) => {
    const store = new MemoryStore(options);
    stores.push(store);
    return store;
  };
  afterEach(async () => {
    vi.useRealTimers();
    await Promise.all(stores.splice(0).map((store) => store.close()));
  });

  it("evicts the least recently used record past maxEntries; get counts as use", async () => {
    const store = open({ maxEntries: 3 });
    const userId = newUserId();
    const [a, b, c, d] = [makeRecord(), makeRecord({ userId }), makeRecord(), makeRecord()];
    for (const record of [a!, b!, c!]) await store.insert(record);
    expect(await store.get(a!.id)).toEqual(a);
    await store.insert(d!);
    expect(store.size).toBe(3);
    expect(await store.get(b!.id)).toBeUndefined();
    expect(await store.listByUser(userId)).toEqual([]);
    for (const record of [a!, c!, d!]) expect(await store.get(record.id)).toEqual(record);
  });

  it("LRU order follows commit and touch too, and skips deleted and consumed records", async () => {
    const store = open({ maxEntries: 4 });
    const [a, b, c, d, e, f, g] = Array.from({ length: 7 }, () => makeRecord());
    for (const record of [a!, b!, c!, d!]) await store.insert(record);
    await store.commit(a!.id, { set: { used: true } });
    await store.touch(b!.id, b!.idleExpiresAt + 1000);
    // Use order now, oldest first: c, d, a, b. Removing c and consuming d leaves a, b.
    await store.delete(c!.id);
    await store.consume(d!.id, () => true);
    for (const record of [e!, f!, g!]) await store.insert(record);
    expect(store.size).toBe(4);
    expect(await store.get(a!.id)).toBeUndefined();
    for (const record of [b!, e!, f!, g!]) expect(await store.get(record.id)).toBeDefined();
  });

  it("the synchronous lane judges expiry by the time it is given, or reads the clock itself", async () => {
    const store = open();
    const record = makeRecord();
    await store.insert(record);
    const later = record.idleExpiresAt + 1;
    expect(store.peekNow(record.id)?.id).toBe(record.id);
    expect(store.peekNow(record.id, record.idleExpiresAt - 1)?.id).toBe(record.id);
    expect(() => store.commitNow(record.id, { set: { a: 1 } }, undefined, later)).toThrow(
      expect.objectContaining({ code: "SESSION_ENDED" }),
    );
    store.touchNow(record.id, later + 1000, later); // past its expiry: a no-op, as for an unknown id
    expect(store.peekNow(record.id, later)).toBeUndefined();
  });

  it("packs a record nobody used for two sweep intervals; it reads back with every field", async () => {
    const store = open({ sweepIntervalMs: 10 });
    const now = Date.now();
    const record = makeRecord({
      userId: newUserId(),
      lastLoginAt: now - 5,
      language: "fr",
      channel: { algorithm: "x25519-chacha20poly1305", sealedSecret: "sealed.secret" },
      connection: { id: "c1", node: "n1", generation: 3, received: 7, key: "k".repeat(43) },
      loginType: "robot",
      level: 100,
      // A time that does not count exactly from createdAt, and one that never comes.
      rotatedAt: now + 0.1,
      expiresAt: Number.POSITIVE_INFINITY,
      attributes: { theme: "dark", nested: { list: [1, "two", null, { three: true }] }, ["__proto__"]: 1 },
    });
    await store.insert(record);
    const lent = store.peekNow(record.id);
    expect(lent).toEqual(record);
    // In use: the same object again, until the timer has passed twice without it being unpacked anew.
    expect(store.peekNow(record.id)).toBe(lent);
    await waitFor(() => store.peekNow(record.id) !== lent, 3000, "packing");
    expect(await store.get(record.id)).toEqual(record);
    expect(Object.keys((await store.get(record.id))!.attributes)).toEqual(["theme", "nested", "__proto__"]);
  });

  it("a packed record keeps its version, user index, outbox and expiry; commits and renames apply to it", async () => {
    const store = open({ sweepIntervalMs: 5, maxEntries: 10 });
    const userId = newUserId();
    const record = makeRecord({ userId, attributes: { a: 1 } });
    await store.insert(record);
    await store.outboxAppend(record.id, ["m1", "m2"], { maxMessages: 10, maxBytes: 1000 });
    const packed = async () => {
      const lent = store.peekNow(record.id);
      await waitFor(() => store.peekNow(record.id) !== lent, 3000, "packing");
      await sleep(30);
    };
    await packed();
    expect(await store.commit(record.id, { set: { b: 2 }, unset: ["a"] }, { ifVersion: 1 })).toBe(2);
    await packed();
    expect((await store.get(record.id))!.attributes).toEqual({ b: 2 });
    expect((await store.listByUser(userId)).map((r) => r.id)).toEqual([record.id]);
    expect((await store.outboxRead(record.id, 0)).messages.map((m) => m.data)).toEqual(["m1", "m2"]);
    await expectCode(store.commit(record.id, { set: { c: 3 } }, { ifVersion: 1 }), "VERSION_CONFLICT");

    const renamed = makeRecord({ userId, attributes: { b: 2 } });
    expect(await store.rename(record.id, renamed, { graceMs: 0 })).toBe(3);
    expect((await store.listByUser(userId)).map((r) => r.id)).toEqual([renamed.id]);
    // A packed record that expires leaves the user index with it.
    await sleep(30);
    await store.touch(renamed.id, Date.now() + 40);
    await sleep(30);
    await waitFor(async () => store.size === 0, 3000, "expiry");
    expect(await store.listByUser(userId)).toEqual([]);
    // listByUser skips dead ids anyway: the index itself must be empty.
    expect((store as unknown as { users: { size: number } }).users.size).toBe(0);
  });

  it("without maxEntries keeps every record", async () => {
    const store = open();
    const records = Array.from({ length: 1000 }, () => makeRecord());
    for (const record of records) await store.insert(record);
    expect(store.size).toBe(1000);
  });

  it("removes expired records on its own timer, without sweep()", async () => {
    const store = open({ sweepIntervalMs: 20 });
    const userId = newUserId();
    const now = Date.now();
    await store.insert(makeRecord({ userId, expiresAt: now + 100 }));
    await store.insert(makeRecord({ userId, idleExpiresAt: now + 100 }));
    const kept = makeRecord();
    await store.insert(kept);
    expect(store.size).toBe(3);
    await waitFor(() => store.size === 1, 3000, "background expiry");
    expect(await store.get(kept.id)).toEqual(kept);
  });

  it("sweep returns how many records it removed", async () => {
    const store = open({ sweepIntervalMs: 3_600_000 });
    const now = Date.now();
    for (let i = 0; i < 5; i++) await store.insert(makeRecord({ expiresAt: now + 50 }));
    await store.insert(makeRecord());
    await sleep(100);
    expect(await store.sweep(Date.now())).toBe(5);
    expect(store.size).toBe(1);
    expect(await store.sweep(Date.now())).toBe(0);
  });

  it("a record re-timed later outlives its old expiry and goes at its new one; one re-timed earlier goes at once", async () => {
    const store = open({ sweepIntervalMs: 3_600_000 });
    const base = Date.now() + 60_000;
    const [committed, touched, earlier, kept] = [0, 1, 2, 3].map(() =>
      makeRecord({ idleExpiresAt: base, expiresAt: base + 100_000 }),
    );
    for (const record of [committed!, touched!, kept!]) await store.insert(record);
    await store.insert({ ...earlier!, idleExpiresAt: base + 3000 });
    await store.commit(committed!.id, { set: { n: 1 }, meta: { idleExpiresAt: base + 1000 } });
    await store.touch(touched!.id, base + 2000);
    await store.touch(kept!.id, base + 50_000);
    await store.touch(earlier!.id, base - 500);
    expect(await store.sweep(base - 100)).toBe(1);
    expect(await store.get(earlier!.id)).toBeUndefined();
    // Past the old expiry of the other three: each is moved to its place, none removed.
    expect(await store.sweep(base + 500)).toBe(0);
    expect(store.size).toBe(3);
    expect((await store.get(committed!.id))?.attributes).toEqual({ ...committed!.attributes, n: 1 });
    expect(await store.sweep(base + 1500)).toBe(1);
    expect(await store.get(committed!.id)).toBeUndefined();
    expect(await store.sweep(base + 2500)).toBe(1);
    expect(await store.get(touched!.id)).toBeUndefined();
    expect((await store.get(kept!.id))?.idleExpiresAt).toBe(base + 50_000);
    expect(store.size).toBe(1);
  });

  it("does not keep the process alive", async () => {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", fileURLToPath(new URL("./memory-child.ts", import.meta.url))],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    const timeout = sleep(15_000).then(() => "still running" as const);
    const result = await Promise.race([exited, timeout]);
    if (result === "still running") child.kill();
    expect(result).toBe(0);
    expect(output).toBe("ready\n");
  });

  it("close() stops its timer and later calls fail with STORE_UNAVAILABLE", async () => {
    vi.useFakeTimers();
    const before = vi.getTimerCount();
    const store = new MemoryStore();
    expect(vi.getTimerCount()).toBe(before + 1);
    await store.close();
    expect(vi.getTimerCount()).toBe(before);
    await expectCode(store.get(makeRecord().id), "STORE_UNAVAILABLE");
    await expectCode(store.insert(makeRecord()), "STORE_UNAVAILABLE");
    await store.close();
  });

  it("a listener that throws does not reach the publisher or the other listeners", async () => {
    const store = open();
    const received: StoreEvent[] = [];
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(warning.message);
    process.on("warning", onWarning);
    try {
      await store.subscribe(() => {
        throw new Error("listener bug");
      });
      await store.subscribe((event) => received.push(event));
      const event: StoreEvent = { type: "revoked", id: makeRecord().id, at: Date.now() };
      await store.publish(event);
      await waitFor(() => received.length === 1 && warnings.length === 1, 2000, "delivery and warning");
      expect(received).toEqual([event]);
      expect(warnings[0]).toContain("listener bug");
    } finally {
      process.off("warning", onWarning);
    }
  });

  it("an event published before unsubscribe but not yet delivered is not delivered", async () => {
    const store = open();
    const received: StoreEvent[] = [];
    const unsubscribe = await store.subscribe((event) => received.push(event));
    const publishing = store.publish({ type: "ended", id: makeRecord().id, at: Date.now() });
    await unsubscribe();
    await publishing;
    await sleep(20);
    expect(received).toEqual([]);
  });

  it("refuses invalid options with CONFIG_INVALID", () => {
    for (const options of [{ maxEntries: 0 }, { maxEntries: 1.5 }, { sweepIntervalMs: 0 }]) {
      expect(() => new MemoryStore(options)).toThrowError(
        expect.objectContaining({ code: "CONFIG_INVALID" }),
      );
    }
  });
});
