import { makeRecord, newUserId, type StoreGetter, sleep } from "./helpers.js";
import type { ConformanceRunner } from "./runner.js";

export function scanTests({ it, expect }: ConformanceRunner, getStore: StoreGetter): void {
  it("scan lists every live record, signed in or not, page by page; no alias, no expired record", async () => {
    const store = getStore();
    const userId = newUserId();
    const mine = Array.from({ length: 23 }, (_, i) =>
      makeRecord({ attributes: { i }, ...(i % 3 === 0 ? { userId } : {}) }),
    );
    for (const record of mine) await store.insert(record);
    const renamed = mine[5]!;
    const successor = makeRecord({ attributes: { i: 5 } });
    await store.rename(renamed.id, successor, { graceMs: 60_000 });
    const doomed = makeRecord({ idleExpiresAt: Date.now() + 150 });
    await store.insert(doomed);
    await sleep(250);
    const seen = new Map<string, number>();
    let pages = 0;
    for await (const page of store.scan({ batch: 7 })) {
      pages++;
      for (const record of page) seen.set(record.id, (seen.get(record.id) ?? 0) + 1);
      // Each record is a whole copy, as get gives it.
      const one = page.find((r) => r.id === mine[1]!.id);
      if (one) expect(one).toEqual(await store.get(one.id));
    }
    const live = [...mine.filter((r) => r !== renamed), successor];
    for (const record of live) expect(seen.get(record.id) ?? 0).toBeGreaterThanOrEqual(1);
    expect(seen.has(renamed.id)).toBe(false);
    expect(seen.has(doomed.id)).toBe(false);
    expect(pages).toBeGreaterThanOrEqual(2);
  });

  it("scan of a store whose records all went yields nothing of them, and a stopped scan stops", async () => {
    const store = getStore();
    const record = makeRecord();
    await store.insert(record);
    await store.delete(record.id);
    for await (const page of store.scan({ batch: 1 })) {
      expect(page.some((r) => r.id === record.id)).toBe(false);
      break;
    }
  });
}
