import { idsOf, makeRecord, newUserId, type StoreGetter } from "./helpers.js";
import type { ConformanceRunner } from "./runner.js";

export function userIndexTests({ it, expect }: ConformanceRunner, getStore: StoreGetter): void {
  it("listByUser returns that user's records only, in full", async () => {
    const store = getStore();
    const alice = newUserId();
    const bob = newUserId();
    const mine = [
      makeRecord({ userId: alice, attributes: { device: "phone" } }),
      makeRecord({ userId: alice, attributes: { device: "laptop" } }),
      makeRecord({ userId: alice, language: "it" }),
    ];
    const theirs = makeRecord({ userId: bob });
    const anonymous = makeRecord();
    for (const record of [...mine, theirs, anonymous]) await store.insert(record);
    const listed = await store.listByUser(alice);
    expect(idsOf(listed)).toEqual(idsOf(mine));
    for (const record of mine) expect(listed.find((r) => r.id === record.id)).toEqual(record);
    expect(idsOf(await store.listByUser(bob))).toEqual([theirs.id]);
  });

  it("listByUser of a user with no records is empty", async () => {
    expect(await getStore().listByUser(newUserId())).toEqual([]);
  });

  it("deleteByUser with exceptId removes the others and returns their ids", async () => {
    const store = getStore();
    const alice = newUserId();
    const bob = newUserId();
    const keep = makeRecord({ userId: alice });
    const others = [makeRecord({ userId: alice }), makeRecord({ userId: alice })];
    const bobs = makeRecord({ userId: bob });
    for (const record of [keep, ...others, bobs]) await store.insert(record);
    const removed = await store.deleteByUser(alice, { exceptId: keep.id });
    expect([...removed].sort()).toEqual(idsOf(others));
    for (const record of others) expect(await store.get(record.id)).toBeUndefined();
    expect(await store.get(keep.id)).toEqual(keep);
    expect(idsOf(await store.listByUser(alice))).toEqual([keep.id]);
    expect(await store.get(bobs.id)).toEqual(bobs);
  });

  it("deleteByUser without exceptId removes all of the user's records", async () => {
    const store = getStore();
    const alice = newUserId();
    const records = [makeRecord({ userId: alice }), makeRecord({ userId: alice })];
    for (const record of records) await store.insert(record);
    expect([...(await store.deleteByUser(alice))].sort()).toEqual(idsOf(records));
    expect(await store.listByUser(alice)).toEqual([]);
    for (const record of records) expect(await store.get(record.id)).toBeUndefined();
    expect(await store.deleteByUser(alice)).toEqual([]);
  });

  it("a commit that changes userId moves the record between users' lists", async () => {
    const store = getStore();
    const alice = newUserId();
    const bob = newUserId();
    const record = makeRecord({ userId: alice });
    await store.insert(record);
    await store.commit(record.id, { meta: { userId: bob } });
    expect(await store.listByUser(alice)).toEqual([]);
    expect(idsOf(await store.listByUser(bob))).toEqual([record.id]);
    expect((await store.listByUser(bob))[0]?.userId).toBe(bob);
    await store.commit(record.id, { meta: { userId: null } });
    expect(await store.listByUser(bob)).toEqual([]);
    await store.commit(record.id, { meta: { userId: alice } });
    expect(idsOf(await store.listByUser(alice))).toEqual([record.id]);
  });

  it("a commit that signs in an anonymous record adds it to the user's list", async () => {
    const store = getStore();
    const alice = newUserId();
    const record = makeRecord();
    await store.insert(record);
    await store.commit(record.id, { meta: { userId: alice, loginType: "human" } });
    expect(idsOf(await store.listByUser(alice))).toEqual([record.id]);
  });

  it("delete removes the record from its user's list", async () => {
    const store = getStore();
    const alice = newUserId();
    const gone = makeRecord({ userId: alice });
    const kept = makeRecord({ userId: alice });
    await store.insert(gone);
    await store.insert(kept);
    await store.delete(gone.id);
    expect(idsOf(await store.listByUser(alice))).toEqual([kept.id]);
  });
}
