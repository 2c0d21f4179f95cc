import type { SessionRecord } from "../core/record.js";
import { expectCode, idsOf, makeRecord, newUserId, type StoreGetter, sleep } from "./helpers.js";
import type { ConformanceRunner } from "./runner.js";

/** A record at version 3, as a session that has been written twice looks. */
async function insertAtVersion3(getStore: StoreGetter, overrides: Partial<SessionRecord> = {}) {
  const store = getStore();
  const record = makeRecord({ attributes: { a: 1 }, ...overrides });
  await store.insert(record);
  await store.commit(record.id, { set: { b: 2 } });
  await store.commit(record.id, { set: { c: 3 } });
  const stored = await store.get(record.id);
  if (!stored) throw new Error("record missing");
  return stored;
}

/** The record that replaces `old`: new id and verifier, same content. */
function successor(old: SessionRecord, overrides: Partial<SessionRecord> = {}): SessionRecord {
  const fresh = makeRecord();
  const { via: _via, ...plain } = old as SessionRecord & { via?: unknown };
  return {
    ...plain,
    id: fresh.id,
    verifier: fresh.verifier,
    rotatedAt: Date.now(),
    version: 1,
    ...overrides,
  };
}

export function renameConsumeTests({ it, expect }: ConformanceRunner, getStore: StoreGetter): void {
  it("rename with graceMs 0 removes the old id and stores the new record at version old+1", async () => {
    const store = getStore();
    const old = await insertAtVersion3(getStore);
    const next = successor(old, { attributes: { moved: true } });
    expect(await store.rename(old.id, next, { graceMs: 0 })).toBe(4);
    expect(await store.get(old.id)).toBeUndefined();
    expect(await store.get(next.id)).toEqual({ ...next, version: 4 });
    await expectCode(store.commit(old.id, { set: { x: 1 } }), "SESSION_ENDED");
    expect(await store.commit(next.id, { set: { x: 1 } }, { ifVersion: 4 })).toBe(5);
  });

  it("rename with grace: the old id resolves to the new record with via (old verifier, until)", async () => {
    const store = getStore();
    const old = await insertAtVersion3(getStore);
    const next = successor(old);
    const graceMs = 60_000;
    const before = Date.now();
    await store.rename(old.id, next, { graceMs });
    const after = Date.now();

    const viaOld = await store.get(old.id);
    expect(viaOld).toBeDefined();
    const { via, ...plain } = viaOld!;
    expect(plain).toEqual({ ...next, version: 4 });
    expect(via?.from).toBe(old.id);
    expect(via?.verifier).toBe(old.verifier);
    expect(via?.verifier).not.toBe(next.verifier);
    // `until` is on the store's clock; allow a generous skew but it must be about now + graceMs.
    expect(via!.until).toBeGreaterThan(before + graceMs - 5000);
    expect(via!.until).toBeLessThan(after + graceMs + 5000);

    const direct = await store.get(next.id);
    expect(direct?.via).toBeUndefined();
    expect(direct).toEqual({ ...next, version: 4 });
  });

  it("two rotations inside one grace window: the first id still resolves; a rename with no grace ends both", async () => {
    const store = getStore();
    const a = await insertAtVersion3(getStore);
    const b = successor(a);
    await store.rename(a.id, b, { graceMs: 60_000 });
    const c = successor(b);
    await store.rename(b.id, c, { graceMs: 60_000 });
    const viaA = await store.get(a.id);
    expect(viaA?.id).toBe(c.id);
    expect(viaA?.via?.from).toBe(a.id);
    expect(viaA?.via?.verifier).toBe(a.verifier);
    expect((await store.get(b.id))?.via?.verifier).toBe(b.verifier);
    const d = successor(c);
    await store.rename(c.id, d, { graceMs: 0 });
    expect(await store.get(a.id)).toBeUndefined();
    expect(await store.get(b.id)).toBeUndefined();
    expect(await store.get(c.id)).toBeUndefined();
    expect((await store.get(d.id))?.id).toBe(d.id);
  });

  it("an alias follows commits made to the new record", async () => {
    const store = getStore();
    const old = await insertAtVersion3(getStore);
    const next = successor(old);
    await store.rename(old.id, next, { graceMs: 60_000 });
    await store.commit(next.id, { set: { later: "yes" } });
    const viaOld = await store.get(old.id);
    expect(viaOld?.id).toBe(next.id);
    expect(viaOld?.version).toBe(5);
    expect(viaOld?.attributes.later).toBe("yes");
  });

  it("only get follows an alias: commit and consume of the old id see nothing", async () => {
    const store = getStore();
    const old = await insertAtVersion3(getStore);
    const next = successor(old);
    await store.rename(old.id, next, { graceMs: 60_000 });
    await expectCode(store.commit(old.id, { set: { x: 1 } }), "SESSION_ENDED");
    expect(await store.consume(old.id, () => true)).toBeUndefined();
    expect(await store.get(next.id)).toEqual({ ...next, version: 4 });
  });

  it("refuses to insert a record whose id is a live alias (DUPLICATE_ID)", async () => {
    const store = getStore();
    const old = await insertAtVersion3(getStore);
    const next = successor(old);
    await store.rename(old.id, next, { graceMs: 60_000 });
    await expectCode(store.insert(makeRecord({ id: old.id })), "DUPLICATE_ID");
    expect((await store.get(old.id))?.via?.from).toBe(old.id);
  });

  it("the alias stops resolving once the grace window has passed", async () => {
    const store = getStore();
    const old = await insertAtVersion3(getStore);
    const next = successor(old);
    await store.rename(old.id, next, { graceMs: 300 });
    expect((await store.get(old.id))?.id).toBe(next.id);
    await sleep(600);
    expect(await store.get(old.id)).toBeUndefined();
    expect(await store.get(next.id)).toEqual({ ...next, version: 4 });
  });

  it("rename with a stale ifVersion: VERSION_CONFLICT and nothing changes", async () => {
    const store = getStore();
    const old = await insertAtVersion3(getStore);
    const next = successor(old);
    await expectCode(store.rename(old.id, next, { graceMs: 10_000, ifVersion: 2 }), "VERSION_CONFLICT");
    expect(await store.get(old.id)).toEqual(old);
    expect(await store.get(next.id)).toBeUndefined();
    expect(await store.rename(old.id, next, { graceMs: 0, ifVersion: 3 })).toBe(4);
  });

  it("rename of an unknown id: SESSION_ENDED and the new record is not stored", async () => {
    const store = getStore();
    const next = makeRecord();
    await expectCode(store.rename(makeRecord().id, next, { graceMs: 10_000 }), "SESSION_ENDED");
    expect(await store.get(next.id)).toBeUndefined();
  });

  it("rename moves the user index to the new id", async () => {
    const store = getStore();
    const userId = newUserId();
    const old = await insertAtVersion3(getStore, { userId });
    const sibling = makeRecord({ userId });
    await store.insert(sibling);
    const next = successor(old);
    await store.rename(old.id, next, { graceMs: 10_000 });
    expect(idsOf(await store.listByUser(userId))).toEqual([next.id, sibling.id].sort());
  });

  it("rename to a record of another user (login) indexes it under the new user only", async () => {
    const store = getStore();
    const before = newUserId();
    const after = newUserId();
    const old = await insertAtVersion3(getStore, { userId: before });
    const next = successor(old, { userId: after, loginType: "human", lastLoginAt: Date.now() });
    await store.rename(old.id, next, { graceMs: 0 });
    expect(await store.listByUser(before)).toEqual([]);
    expect(await store.listByUser(after)).toEqual([{ ...next, version: 4 }]);
  });

  it("rename of an anonymous record to a signed-in one adds it to the user's list", async () => {
    const store = getStore();
    const userId = newUserId();
    const old = await insertAtVersion3(getStore);
    const next = successor(old, { userId });
    await store.rename(old.id, next, { graceMs: 0 });
    expect(idsOf(await store.listByUser(userId))).toEqual([next.id]);
  });

  it("consume with a passing check returns the record and removes it", async () => {
    const store = getStore();
    const userId = newUserId();
    const record = await insertAtVersion3(getStore, { userId });
    const seen: SessionRecord[] = [];
    const consumed = await store.consume(record.id, (r) => {
      seen.push(structuredClone(r));
      return true;
    });
    expect(consumed).toEqual(record);
    expect(seen.length).toBeGreaterThanOrEqual(1);
    expect(seen[0]).toEqual(record);
    expect(await store.get(record.id)).toBeUndefined();
    expect(await store.listByUser(userId)).toEqual([]);
    await expectCode(store.commit(record.id, { set: { x: 1 } }), "SESSION_ENDED");
  });

  it("consume with a failing check returns undefined and leaves the record untouched", async () => {
    const store = getStore();
    const userId = newUserId();
    const record = await insertAtVersion3(getStore, { userId });
    expect(await store.consume(record.id, () => false)).toBeUndefined();
    expect(await store.get(record.id)).toEqual(record);
    expect(idsOf(await store.listByUser(userId))).toEqual([record.id]);
    expect(await store.commit(record.id, { set: { x: 1 } }, { ifVersion: 3 })).toBe(4);
  });

  it("consume decides on the stored content (check sees the attributes)", async () => {
    const store = getStore();
    const record = makeRecord({ attributes: { proof: "right" } });
    await store.insert(record);
    const wrong = (r: SessionRecord) => r.attributes.proof === "wrong";
    const right = (r: SessionRecord) => r.attributes.proof === "right";
    expect(await store.consume(record.id, wrong)).toBeUndefined();
    expect(await store.consume(record.id, right)).toEqual(record);
  });

  it("consume of an unknown id returns undefined", async () => {
    expect(await getStore().consume(makeRecord().id, () => true)).toBeUndefined();
  });

  it("20 parallel consumes of one id: exactly one gets the record", async () => {
    const store = getStore();
    const record = makeRecord({ attributes: { once: true } });
    await store.insert(record);
    const results = await Promise.all(Array.from({ length: 20 }, () => store.consume(record.id, () => true)));
    const winners = results.filter((r) => r !== undefined);
    expect(winners).toEqual([record]);
    expect(await store.get(record.id)).toBeUndefined();
  });
}
