import { expectCode, idsOf, makeRecord, newUserId, type StoreGetter, sleep } from "./helpers.js";
import type { ConformanceRunner } from "./runner.js";

const SHORT = 300;
const PAST_SHORT = 600;

export function expiryTests({ it, expect }: ConformanceRunner, getStore: StoreGetter): void {
  it("an absolute expiry ends the record: after sweep it is gone from get and listByUser", async () => {
    const store = getStore();
    const userId = newUserId();
    const now = Date.now();
    const doomed = makeRecord({ userId, expiresAt: now + SHORT, idleExpiresAt: now + 3_600_000 });
    const alive = makeRecord({ userId });
    await store.insert(doomed);
    await store.insert(alive);
    expect(await store.get(doomed.id)).toEqual(doomed);
    await sleep(PAST_SHORT);
    await store.sweep(Date.now());
    expect(await store.get(doomed.id)).toBeUndefined();
    expect(idsOf(await store.listByUser(userId))).toEqual([alive.id]);
    await expectCode(store.commit(doomed.id, { set: { a: 1 } }), "SESSION_ENDED");
  });

  it("an idle expiry alone ends the record", async () => {
    const store = getStore();
    const userId = newUserId();
    const now = Date.now();
    const doomed = makeRecord({ userId, expiresAt: now + 3_600_000, idleExpiresAt: now + SHORT });
    await store.insert(doomed);
    await sleep(PAST_SHORT);
    await store.sweep(Date.now());
    expect(await store.get(doomed.id)).toBeUndefined();
    expect(await store.listByUser(userId)).toEqual([]);
  });

  it("sweep leaves unexpired records and returns a count", async () => {
    const store = getStore();
    const userId = newUserId();
    const records = [makeRecord({ userId }), makeRecord({ userId }), makeRecord()];
    for (const record of records) await store.insert(record);
    const count = await store.sweep(Date.now());
    expect(Number.isInteger(count)).toBe(true);
    expect(count).toBeGreaterThanOrEqual(0);
    for (const record of records) expect(await store.get(record.id)).toEqual(record);
    expect(idsOf(await store.listByUser(userId))).toEqual(idsOf(records.slice(0, 2)));
  });

  it("touch extends the idle expiry, so the record outlives its first deadline", async () => {
    const store = getStore();
    const now = Date.now();
    const record = makeRecord({ idleExpiresAt: now + SHORT });
    await store.insert(record);
    await store.touch(record.id, now + 60_000);
    await sleep(PAST_SHORT);
    await store.sweep(Date.now());
    expect((await store.get(record.id))?.idleExpiresAt).toBe(now + 60_000);
  });

  it("a commit that extends the expiry keeps the record alive", async () => {
    const store = getStore();
    const now = Date.now();
    const record = makeRecord({ expiresAt: now + SHORT, idleExpiresAt: now + SHORT });
    await store.insert(record);
    await store.commit(record.id, { meta: { expiresAt: now + 60_000, idleExpiresAt: now + 60_000 } });
    await sleep(PAST_SHORT);
    await store.sweep(Date.now());
    expect((await store.get(record.id))?.version).toBe(2);
  });

  it("a commit that shortens the expiry makes the record expire sooner", async () => {
    const store = getStore();
    const userId = newUserId();
    const record = makeRecord({ userId });
    await store.insert(record);
    await store.commit(record.id, { meta: { expiresAt: Date.now() + SHORT } });
    await sleep(PAST_SHORT);
    await store.sweep(Date.now());
    expect(await store.get(record.id)).toBeUndefined();
    expect(await store.listByUser(userId)).toEqual([]);
  });

  it("a renamed record expires on the new record's times", async () => {
    const store = getStore();
    const now = Date.now();
    const old = makeRecord({ expiresAt: now + 3_600_000 });
    await store.insert(old);
    const next = makeRecord({ expiresAt: now + SHORT });
    await store.rename(old.id, next, { graceMs: 0 });
    await sleep(PAST_SHORT);
    await store.sweep(Date.now());
    expect(await store.get(next.id)).toBeUndefined();
  });
}
