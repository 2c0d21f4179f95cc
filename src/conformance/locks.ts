import { makeRecord, type StoreGetter, sleep } from "./helpers.js";
import type { ConformanceRunner } from "./runner.js";

/** Locks are independent of records, so any fresh id will do. */
const lockId = () => makeRecord().id;

export function lockTests({ it, expect }: ConformanceRunner, getStore: StoreGetter): void {
  it("lock returns a fence; a second lock on the same id is refused", async () => {
    const store = getStore();
    const id = lockId();
    const lock = await store.lock(id, 10_000);
    expect(lock).not.toBeNull();
    expect(typeof lock!.fence).toBe("number");
    expect(await store.lock(id, 10_000)).toBeNull();
    await lock!.release();
  });

  it("locks on different ids do not block each other", async () => {
    const store = getStore();
    const a = await store.lock(lockId(), 10_000);
    const b = await store.lock(lockId(), 10_000);
    expect(a).not.toBeNull();
    expect(b).not.toBeNull();
    await a!.release();
    await b!.release();
  });

  it("release frees the id; the next lock gets a higher fence", async () => {
    const store = getStore();
    const id = lockId();
    const first = await store.lock(id, 10_000);
    await first!.release();
    const second = await store.lock(id, 10_000);
    expect(second).not.toBeNull();
    expect(second!.fence).toBeGreaterThan(first!.fence);
    await second!.release();
    await second!.release();
    const third = await store.lock(id, 10_000);
    expect(third!.fence).toBeGreaterThan(second!.fence);
    await third!.release();
  });

  it("a lease expires by itself; the next holder gets a higher fence", async () => {
    const store = getStore();
    const id = lockId();
    const first = await store.lock(id, 200);
    expect(first).not.toBeNull();
    await sleep(350);
    const second = await store.lock(id, 10_000);
    expect(second).not.toBeNull();
    expect(second!.fence).toBeGreaterThan(first!.fence);
    await second!.release();
  });

  it("a stale holder's release does not free the new holder's lock", async () => {
    const store = getStore();
    const id = lockId();
    const stale = await store.lock(id, 200);
    await sleep(350);
    const current = await store.lock(id, 10_000);
    expect(current).not.toBeNull();
    await stale!.release();
    expect(await store.lock(id, 10_000)).toBeNull();
    await current!.release();
    const next = await store.lock(id, 10_000);
    expect(next).not.toBeNull();
    await next!.release();
  });

  it("a lock does not need a record and does not create one", async () => {
    const store = getStore();
    const id = lockId();
    const lock = await store.lock(id, 10_000);
    expect(lock).not.toBeNull();
    expect(await store.get(id)).toBeUndefined();
    await lock!.release();
  });

  it("a lock on a record's id does not touch the record", async () => {
    const store = getStore();
    const record = makeRecord({ attributes: { a: 1 } });
    await store.insert(record);
    const lock = await store.lock(record.id, 10_000);
    expect(lock).not.toBeNull();
    expect(await store.get(record.id)).toEqual(record);
    await lock!.release();
    expect(await store.get(record.id)).toEqual(record);
  });

  it("20 parallel lock attempts: exactly one wins", async () => {
    const store = getStore();
    const id = lockId();
    const results = await Promise.all(Array.from({ length: 20 }, () => store.lock(id, 10_000)));
    const winners = results.filter((lock) => lock !== null);
    expect(winners).toHaveLength(1);
    await winners[0]!.release();
  });
}
