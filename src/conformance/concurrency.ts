import { incrementLoop, makeRecord, type StoreGetter } from "./helpers.js";
import type { ConformanceRunner } from "./runner.js";

const N = 200;

export function concurrencyTests({ it, expect }: ConformanceRunner, getStore: StoreGetter): void {
  it(`${N} parallel commits of different keys: none is lost`, async () => {
    const store = getStore();
    const record = makeRecord({ attributes: { base: true } });
    await store.insert(record);
    const versions = await Promise.all(
      Array.from({ length: N }, (_, i) => store.commit(record.id, { set: { [`k${i}`]: i } })),
    );
    const got = await store.get(record.id);
    const expected: Record<string, unknown> = { base: true };
    for (let i = 0; i < N; i++) expected[`k${i}`] = i;
    expect(got?.attributes).toEqual(expected);
    expect(got?.version).toBe(N + 1);
    // Each commit saw its own version: no two commits claim the same write.
    expect(new Set(versions).size).toBe(N);
  });

  it(`${N} parallel read-modify-write loops of one key end at exactly ${N}`, async () => {
    const store = getStore();
    const record = makeRecord({ attributes: { n: 0 } });
    await store.insert(record);
    await Promise.all(Array.from({ length: N }, () => incrementLoop(store, record.id, "n")));
    const got = await store.get(record.id);
    expect(got?.attributes.n).toBe(N);
    expect(got?.version).toBe(N + 1);
  });

  it(`${N} parallel inserts of different records are all readable`, async () => {
    const store = getStore();
    const records = Array.from({ length: N }, (_, i) => makeRecord({ attributes: { i } }));
    await Promise.all(records.map((record) => store.insert(record)));
    const got = await Promise.all(records.map((record) => store.get(record.id)));
    expect(got).toEqual(records);
  });
}
