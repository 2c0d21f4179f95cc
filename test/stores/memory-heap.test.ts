import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { makeRecord } from "../../src/conformance/index.js";
import { ExpiryHeap } from "../../src/stores/memory/heap.js";
import { pack, unpack } from "../../src/stores/memory/pack.js";

type Op = { kind: "push" | "update" | "remove" | "pop"; item: number; expiry: number };

describe("ExpiryHeap", () => {
  it("pops in expiry order and knows each item's expiry, through pushes, re-timings and removals", () => {
    const op = fc.record({
      kind: fc.constantFrom("push", "update", "remove", "pop"),
      item: fc.integer({ min: 0, max: 40 }),
      expiry: fc.integer({ min: 0, max: 50 }),
    }) as fc.Arbitrary<Op>;
    fc.assert(
      fc.property(fc.array(op, { maxLength: 3000 }), (ops) => {
        const heap = new ExpiryHeap<{ heapIndex: number; n: number }>();
        const items = Array.from({ length: 41 }, (_, n) => ({ heapIndex: -1, n }));
        const model = new Map<number, number>();
        for (const { kind, item, expiry } of ops) {
          const it = items[item]!;
          if (kind === "push" && !model.has(item)) {
            heap.push(it, expiry);
            model.set(item, expiry);
          } else if (kind === "update") {
            heap.update(it, expiry);
            if (model.has(item)) model.set(item, expiry);
          } else if (kind === "remove") {
            heap.remove(it);
            model.delete(item);
          } else if (kind === "pop") {
            const least = Math.min(...model.values());
            while (heap.settleFirst());
            const top = heap.pop();
            if (model.size === 0) expect(top).toBeUndefined();
            else {
              expect(model.get(top!.n)).toBe(least);
              model.delete(top!.n);
            }
          }
          expect(heap.size).toBe(model.size);
          // An item re-timed later keeps its place: the first place may be earlier than any expiry now.
          const least = model.size ? Math.min(...model.values()) : Number.POSITIVE_INFINITY;
          expect(heap.first()).toBeLessThanOrEqual(least);
          for (const [n, expiry] of model) expect(heap.expiryOf(items[n]!)).toBe(expiry);
        }
        while (heap.settleFirst());
        expect(heap.first()).toBe(model.size ? Math.min(...model.values()) : Number.POSITIVE_INFINITY);
      }),
      { numRuns: 200 },
    );
  });

  it("moves an item re-timed later only when its old expiry comes round, and one re-timed earlier at once", () => {
    const heap = new ExpiryHeap<{ heapIndex: number; n: number }>();
    const items = Array.from({ length: 3 }, (_, n) => ({ heapIndex: -1, n }));
    heap.push(items[0]!, 10);
    heap.push(items[1]!, 20);
    heap.push(items[2]!, 30);
    heap.update(items[0]!, 25);
    expect(heap.expiryOf(items[0]!)).toBe(25);
    expect(heap.first()).toBe(10);
    expect(heap.settleFirst()).toBe(true);
    expect(heap.first()).toBe(20);
    expect(heap.settleFirst()).toBe(false);
    heap.update(items[2]!, 5);
    expect(heap.first()).toBe(5);
    expect(heap.pop()).toBe(items[2]);
    expect(heap.pop()).toBe(items[1]);
    expect(heap.pop()).toBe(items[0]);
    expect(heap.settleFirst()).toBe(false);
  });

  it("keeps order past its first 1024 items and gives memory back when compacted after it empties", () => {
    const heap = new ExpiryHeap<{ heapIndex: number }>();
    const expiries = Array.from({ length: 5000 }, (_, i) => (i * 7919) % 5000);
    const keys = () => (heap as unknown as { keys: Float64Array }).keys.length;
    for (const expiry of expiries) heap.push({ heapIndex: -1 }, expiry);
    expect(keys()).toBeGreaterThanOrEqual(5000);
    const popped: number[] = [];
    while (heap.size > 0) {
      popped.push(heap.first());
      heap.pop();
      if (heap.size === 1000) {
        heap.compact();
        expect(keys()).toBe(2048);
      }
    }
    expect(popped).toEqual([...expiries].sort((a, b) => a - b));
    // Removals leave the arrays as they are (no allocation inside an expiry batch); compact gives them back.
    expect(keys()).toBe(2048);
    heap.compact();
    expect(keys()).toBe(1024);
  });
});

describe("packed records", () => {
  it("unpack(pack(record)) is the record, for any JSON attributes and optional fields", () => {
    const json = fc.jsonValue() as fc.Arbitrary<never>;
    fc.assert(
      fc.property(
        fc.dictionary(fc.string(), json),
        fc.option(fc.string(), { nil: undefined }),
        fc.option(fc.integer({ min: 0, max: 2 ** 50 }), { nil: undefined }),
        fc.option(fc.string(), { nil: undefined }),
        fc.double(),
        fc.constantFrom("unspecified", "human", "robot"),
        (attributes, userId, lastLoginAt, language, idleShift, loginType) => {
          const base = makeRecord({ attributes, loginType: loginType as "human" });
          const record = { ...base, idleExpiresAt: base.createdAt + idleShift };
          if (userId !== undefined) Object.assign(record, { userId });
          if (lastLoginAt !== undefined) Object.assign(record, { lastLoginAt });
          if (language !== undefined) Object.assign(record, { language });
          // Times that do not count exactly from createdAt (fractions, NaN, ±Infinity) come back exactly too;
          // attribute values come back as JSON gives them (-0 as 0), as from every store.
          const expected = { ...record, attributes: JSON.parse(JSON.stringify(attributes)) };
          expect(unpack(record.id, pack(record))).toEqual(expected);
          // The same record with some values handed over as JSON text (insertEncoded) packs alike.
          const plain: Record<string, never> = {};
          const encoded: Record<string, string> = {};
          Object.keys(attributes).forEach((key, i) => {
            const to = i % 2 === 0 ? encoded : plain;
            Object.defineProperty(to, key, {
              value: i % 2 === 0 ? JSON.stringify(attributes[key]) : attributes[key],
              enumerable: true,
            });
          });
          expect(unpack(record.id, pack({ ...record, attributes: plain }, encoded))).toEqual(expected);
        },
      ),
      { numRuns: 300 },
    );
  });
});
