import { PermissionLevel } from "../core/record.js";
import type { PeekedRecord, StoredRecord } from "../core/store.js";
import { expectCode, makeRecord, newUserId, type StoreGetter, thrownCode } from "./helpers.js";
import type { ConformanceRunner } from "./runner.js";

/** A peeked record with its encoded attributes parsed, as `get` would return it. */
function materialized(peeked: PeekedRecord): StoredRecord {
  const { encoded, ...record } = peeked;
  const attributes = { ...record.attributes };
  for (const [key, text] of Object.entries(encoded ?? {})) attributes[key] = JSON.parse(text);
  return { ...record, attributes };
}

export function recordTests({ it, expect }: ConformanceRunner, getStore: StoreGetter): void {
  it("round-trips every field of a full record", async () => {
    const store = getStore();
    const now = Date.now();
    const record = makeRecord({
      createdAt: now - 5000,
      rotatedAt: now - 1000,
      expiresAt: now + 86_400_000,
      idleExpiresAt: now + 1_800_000,
      userId: newUserId(),
      level: PermissionLevel.SUPERVISOR,
      loginType: "human",
      lastLoginAt: now - 2000,
      language: "de-CH",
      channel: { algorithm: "x25519-chacha20poly1305", sealedSecret: "c2VhbGVk.c2VjcmV0" },
      connection: { id: "conn-42", node: "node-a", generation: 2, received: 7, key: "k7" },
      attributes: { cart: [{ sku: "A1", qty: 2 }], theme: "dark", count: 3 },
    });
    await store.insert(record);
    const got = await store.get(record.id);
    expect(got).toEqual(record);
    expect(got?.via).toBeUndefined();
  });

  it("round-trips a minimal record without optional fields", async () => {
    const store = getStore();
    const record = makeRecord({ level: PermissionLevel.OWNER, loginType: "robot" });
    await store.insert(record);
    const got = await store.get(record.id);
    expect(got).toEqual(record);
    expect(got?.userId).toBeUndefined();
    expect(got?.lastLoginAt).toBeUndefined();
    expect(got?.language).toBeUndefined();
    expect(got?.channel).toBeUndefined();
    expect(got?.connection).toBeUndefined();
  });

  it("rejects a second insert of the same id with DUPLICATE_ID and keeps the first", async () => {
    const store = getStore();
    const record = makeRecord({ attributes: { first: true } });
    await store.insert(record);
    const other = makeRecord({ id: record.id, attributes: { first: false }, level: 100 });
    await expectCode(store.insert(other), "DUPLICATE_ID");
    expect(await store.get(record.id)).toEqual(record);
  });

  it("insertEncoded, where a store has it, stores values given as JSON text as insert stores them", async () => {
    const store = getStore();
    if (!store.insertEncoded) return;
    const now = Date.now();
    const record = makeRecord({
      userId: newUserId(),
      lastLoginAt: now - 1000,
      language: "fr",
      connection: { id: "c1", node: "n1", generation: 1, received: 0, key: "k0" },
      attributes: { count: 3, theme: "dark" },
    });
    const cart = [{ sku: "A1", qty: 2, title: 'say "hi"\n' }];
    const encoded: Record<string, string> = { cart: JSON.stringify(cart), "ünïcødé 🎉": '{"deep":{"a":[]}}' };
    Object.defineProperty(encoded, "__proto__", { value: '{"own":true}', enumerable: true });
    await store.insertEncoded(record, encoded);
    const expected = {
      ...record,
      attributes: { count: 3, theme: "dark", cart, "ünïcødé 🎉": { deep: { a: [] } } },
    };
    Object.defineProperty(expected.attributes, "__proto__", { value: { own: true }, enumerable: true });
    const got = await store.get(record.id);
    expect(got).toEqual(expected);
    expect(Object.hasOwn(got!.attributes, "__proto__")).toBe(true);
    expect(Object.getPrototypeOf(got!.attributes)).toBe(Object.prototype);
    // Only encoded values, and a minimal record.
    const bare = makeRecord({ attributes: {} });
    await store.insertEncoded(bare, { list: "[1,2]" });
    expect((await store.get(bare.id))?.attributes).toEqual({ list: [1, 2] });
    await expectCode(store.insertEncoded(makeRecord({ id: record.id }), { x: "1" }), "DUPLICATE_ID");
    await expectCode(store.insert(makeRecord({ id: bare.id })), "DUPLICATE_ID");
    expect(await store.get(record.id)).toEqual(expected);
  });

  it("returns undefined for an unknown id", async () => {
    expect(await getStore().get(makeRecord().id)).toBeUndefined();
  });

  it("deletes: true when the record existed, false otherwise", async () => {
    const store = getStore();
    const record = makeRecord();
    await store.insert(record);
    expect(await store.delete(record.id)).toBe(true);
    expect(await store.get(record.id)).toBeUndefined();
    expect(await store.delete(record.id)).toBe(false);
    expect(await store.delete(makeRecord().id)).toBe(false);
  });

  it("lets a deleted id be inserted again", async () => {
    const store = getStore();
    const record = makeRecord({ attributes: { round: 1 } });
    await store.insert(record);
    await store.delete(record.id);
    const again = { ...record, attributes: { round: 2 } };
    await store.insert(again);
    expect(await store.get(record.id)).toEqual(again);
  });

  it("copies records in: mutating what was inserted does not change the store", async () => {
    const store = getStore();
    const record = makeRecord({
      userId: newUserId(),
      connection: { id: "c1", node: "n1", generation: 1, received: 0, key: "k0" },
      attributes: { list: [1, 2], nested: { deep: { value: "a" } } },
    });
    const snapshot = structuredClone(record);
    await store.insert(record);
    record.level = 200;
    record.attributes.added = true;
    (record.attributes.list as number[]).push(3);
    (record.attributes.nested as { deep: { value: string } }).deep.value = "changed";
    record.connection!.id = "c2";
    expect(await store.get(record.id)).toEqual(snapshot);
  });

  it("copies records out: mutating what get returned does not change the store", async () => {
    const store = getStore();
    const record = makeRecord({
      channel: { algorithm: "alg", sealedSecret: "s" },
      attributes: { list: [1, 2], nested: { deep: { value: "a" } } },
    });
    await store.insert(record);
    const got = await store.get(record.id);
    if (!got) throw new Error("record missing");
    got.version = 99;
    got.attributes.added = true;
    (got.attributes.list as number[]).push(3);
    (got.attributes.nested as { deep: { value: string } }).deep.value = "changed";
    got.channel!.sealedSecret = "other";
    expect(await store.get(record.id)).toEqual(record);
  });

  it("peek, where a store has it, sees what get sees and never changes what it lent", async () => {
    const store = getStore();
    // Without the optional peek, get is what the manager reads through: the same rules hold for it.
    const peek = store.peek ? store.peek.bind(store) : store.get.bind(store);
    const record = makeRecord({ attributes: { list: [1, 2], nested: { deep: { value: "a" } }, n: 1 } });
    await store.insert(record);
    const peeked = await peek(record.id);
    if (!peeked) throw new Error("record missing");
    expect(materialized(peeked)).toEqual(await store.get(record.id));
    // What peek lends is for reading (the caller copies before changing it); a commit replaces a lent
    // value, never changes it in place.
    const lent = materialized(peeked).attributes.list;
    await store.commit(record.id, { set: { list: [9] }, unset: ["nested"] });
    expect(lent).toEqual([1, 2]);
    const again = await peek(record.id);
    expect(again && materialized(again).attributes).toEqual({ list: [9], n: 1 });
    expect(await peek("AAAAAAAAAAAAAAAAAAAAAA")).toBeUndefined();
  });

  it("the synchronous lane, where a store has it, does what the async calls do, at once", async () => {
    const store = getStore();
    const lane = [store.peekNow, store.commitNow, store.touchNow];
    // A store offers all three or none.
    if (lane.every((f) => f === undefined)) return;
    expect(
      lane.every((f) => typeof f === "function"),
      "peekNow, commitNow and touchNow: all or none",
    ).toBe(true);
    if (!store.peekNow || !store.commitNow || !store.touchNow) return;
    const record = makeRecord({ attributes: { n: 1 } });
    await store.insert(record);
    const peeked = store.peekNow(record.id);
    if (!peeked) throw new Error("record missing");
    expect(materialized(peeked)).toEqual(await store.get(record.id));
    expect(store.commitNow(record.id, { set: { n: 2 } }, { ifVersion: 1 })).toBe(2);
    expect((await store.get(record.id))?.attributes.n).toBe(2);
    const idle = record.idleExpiresAt - 1000;
    store.touchNow(record.id, idle);
    expect((await store.get(record.id))?.idleExpiresAt).toBe(idle);
    expect(thrownCode(() => store.commitNow!(record.id, { set: { n: 3 } }, { ifVersion: 1 }))).toBe(
      "VERSION_CONFLICT",
    );
    expect(thrownCode(() => store.commitNow!("AAAAAAAAAAAAAAAAAAAAAA", { set: { n: 3 } }))).toBe(
      "SESSION_ENDED",
    );
    expect(store.peekNow("AAAAAAAAAAAAAAAAAAAAAA")).toBeUndefined();
    expect((await store.get(record.id))?.version).toBe(2);
    // A meta change and a removal, as commit takes them; touch of an unknown id is a no-op.
    expect(store.commitNow(record.id, { unset: ["n"], meta: { language: "fr" } })).toBe(3);
    expect(materialized(store.peekNow(record.id)!)).toEqual(await store.get(record.id));
    expect((await store.get(record.id))?.language).toBe("fr");
    store.touchNow("AAAAAAAAAAAAAAAAAAAAAA", idle);
    // Through a rotation alias, as get: the new record, with `via` naming the old id.
    const next = makeRecord({ attributes: { moved: true } });
    await store.rename(record.id, next, { graceMs: 60_000 });
    const viaAlias = store.peekNow(record.id);
    expect(viaAlias && materialized(viaAlias)).toEqual(await store.get(record.id));
    expect(viaAlias?.via?.from).toBe(record.id);
    expect(thrownCode(() => store.commitNow!(record.id, { set: { n: 4 } }))).toBe("SESSION_ENDED");
  });
}
