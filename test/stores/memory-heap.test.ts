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
            const top = heap.pop();
            if (model.size === 0) expect(top).toBeUndefined();
            else {
              expect(model.get(top!.n)).toBe(least);
              model.delete(top!.n);
            }
          }
          expect(heap.size).toBe(model.size);
          expect(heap.first()).toBe(model.size ? Math.min(...model.values()) : Number.POSITIVE_INFINITY);
        }
        for (const [n, expiry] of model) expect(heap.expiryOf(items[n]!)).toBe(expiry);
      }),
      { numRuns: 200 },
    );
  });

  it("keeps order past its first 1024 items and gives memory back as it empties", () => {
    const heap = new ExpiryHeap<{ heapIndex: number }>();
    const expiries = Array.from({ length: 5000 }, (_, i) => (i * 7919) % 5000);
    const keys = () => (heap as unknown as { keys: Float64Array }).keys.length;
    for (const expiry of expiries) heap.push({ heapIndex: -1 }, expiry);
    expect(keys()).toBeGreaterThanOrEqual(5000);
    const popped: number[] = [];
    while (heap.size > 0) {
      popped.push(heap.first());
      heap.pop();
    }
    expect(popped).toEqual([...expiries].sort((a, b) => a - b));
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
