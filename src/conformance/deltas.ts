import { expectCode, makeRecord, newUserId, type StoreGetter } from "./helpers.js";
import type { ConformanceRunner } from "./runner.js";

export function deltaTests({ it, expect }: ConformanceRunner, getStore: StoreGetter): void {
  it("sets and unsets attributes per key, leaving other keys alone", async () => {
    const store = getStore();
    const record = makeRecord({ attributes: { keep: 1, change: "old", drop: true, nested: { a: 1, b: 2 } } });
    await store.insert(record);
    await store.commit(record.id, { set: { change: "new", added: [1], nested: { c: 3 } }, unset: ["drop"] });
    const got = await store.get(record.id);
    // A set replaces that key's whole value (no deep merge); untouched keys survive.
    expect(got?.attributes).toEqual({ keep: 1, change: "new", added: [1], nested: { c: 3 } });
  });

  it("ignores unset of a key that does not exist", async () => {
    const store = getStore();
    const record = makeRecord({ attributes: { a: 1 } });
    await store.insert(record);
    await store.commit(record.id, { unset: ["missing"] });
    expect((await store.get(record.id))?.attributes).toEqual({ a: 1 });
  });

  it("applies a meta patch to every meta field", async () => {
    const store = getStore();
    const record = makeRecord();
    await store.insert(record);
    const now = Date.now();
    const meta = {
      expiresAt: now + 7_200_000,
      idleExpiresAt: now + 600_000,
      userId: newUserId(),
      level: 225,
      loginType: "human" as const,
      lastLoginAt: now - 10,
      language: "fr",
      channel: { algorithm: "alg", sealedSecret: "sealed" },
      connection: { id: "c9", node: "n9", generation: 9, received: 90, key: "k90" },
    };
    await store.commit(record.id, { meta });
    expect(await store.get(record.id)).toEqual({ ...record, ...meta, version: 2 });
  });

  it("clears optional meta fields with null", async () => {
    const store = getStore();
    const record = makeRecord({
      userId: newUserId(),
      lastLoginAt: Date.now(),
      language: "en",
      channel: { algorithm: "alg", sealedSecret: "sealed" },
      connection: { id: "c1", node: "n1", generation: 1, received: 0, key: "k0" },
      attributes: { kept: "yes" },
    });
    await store.insert(record);
    await store.commit(record.id, {
      meta: { userId: null, lastLoginAt: null, language: null, channel: null, connection: null },
    });
    const got = await store.get(record.id);
    expect(got?.userId).toBeUndefined();
    expect(got?.lastLoginAt).toBeUndefined();
    expect(got?.language).toBeUndefined();
    expect(got?.channel).toBeUndefined();
    expect(got?.connection).toBeUndefined();
    expect(got?.attributes).toEqual({ kept: "yes" });
    expect(got?.verifier).toBe(record.verifier);
  });

  it("leaves meta fields that the patch does not name", async () => {
    const store = getStore();
    const record = makeRecord({ userId: newUserId(), language: "es", level: 50 });
    await store.insert(record);
    await store.commit(record.id, { meta: { level: 100 } });
    expect(await store.get(record.id)).toEqual({ ...record, level: 100, version: 2 });
  });

  it("increments the version on each commit and returns it", async () => {
    const store = getStore();
    const record = makeRecord();
    await store.insert(record);
    expect((await store.get(record.id))?.version).toBe(1);
    expect(await store.commit(record.id, { set: { a: 1 } })).toBe(2);
    expect(await store.commit(record.id, { meta: { level: 1 } })).toBe(3);
    expect(await store.commit(record.id, { unset: ["a"] })).toBe(4);
    expect((await store.get(record.id))?.version).toBe(4);
  });

  it("commits when ifVersion matches", async () => {
    const store = getStore();
    const record = makeRecord();
    await store.insert(record);
    expect(await store.commit(record.id, { set: { a: 1 } }, { ifVersion: 1 })).toBe(2);
    expect(await store.commit(record.id, { set: { b: 2 } }, { ifVersion: 2 })).toBe(3);
    expect((await store.get(record.id))?.attributes).toEqual({ a: 1, b: 2 });
  });

  it("rejects a stale ifVersion with VERSION_CONFLICT and leaves the record untouched", async () => {
    const store = getStore();
    const record = makeRecord({ attributes: { a: 1 } });
    await store.insert(record);
    await store.commit(record.id, { set: { a: 2 } });
    const before = await store.get(record.id);
    await expectCode(
      store.commit(record.id, { set: { a: 3, b: 1 }, unset: ["a"], meta: { level: 9 } }, { ifVersion: 1 }),
      "VERSION_CONFLICT",
    );
    await expectCode(store.commit(record.id, { set: { a: 4 } }, { ifVersion: 3 }), "VERSION_CONFLICT");
    const after = await store.get(record.id);
    expect(after).toEqual(before);
    expect(after?.version).toBe(2);
  });

  it("rejects a commit to an unknown id with SESSION_ENDED and does not create it", async () => {
    const store = getStore();
    const { id } = makeRecord();
    await expectCode(store.commit(id, { set: { a: 1 } }), "SESSION_ENDED");
    await expectCode(store.commit(id, { set: { a: 1 } }, { ifVersion: 1 }), "SESSION_ENDED");
    expect(await store.get(id)).toBeUndefined();
  });

  it("rejects a commit to a deleted id with SESSION_ENDED", async () => {
    const store = getStore();
    const record = makeRecord();
    await store.insert(record);
    await store.delete(record.id);
    await expectCode(store.commit(record.id, { set: { a: 1 } }), "SESSION_ENDED");
    expect(await store.get(record.id)).toBeUndefined();
  });

  it("copies the delta: mutating it after commit does not change the store", async () => {
    const store = getStore();
    const record = makeRecord();
    await store.insert(record);
    const value = { list: [1, 2] };
    const connection = { id: "c1", node: "n1", generation: 1, received: 0, key: "k0" };
    await store.commit(record.id, { set: { value }, meta: { connection } });
    value.list.push(3);
    connection.id = "c2";
    const got = await store.get(record.id);
    expect(got?.attributes).toEqual({ value: { list: [1, 2] } });
    expect(got?.connection).toEqual({ id: "c1", node: "n1", generation: 1, received: 0, key: "k0" });
  });

  it("touch moves idleExpiresAt without a version bump", async () => {
    const store = getStore();
    const record = makeRecord();
    await store.insert(record);
    const idle = record.idleExpiresAt + 60_000;
    await store.touch(record.id, idle);
    const got = await store.get(record.id);
    expect(got).toEqual({ ...record, idleExpiresAt: idle });
    expect(got?.version).toBe(1);
  });

  it("touch of an unknown id is a no-op", async () => {
    const store = getStore();
    const { id } = makeRecord();
    await store.touch(id, Date.now() + 60_000);
    expect(await store.get(id)).toBeUndefined();
  });
}
