import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { StowageError } from "../../src/core/errors.js";
import { jsonText, serializeJson, textBytes } from "../../src/core/json.js";

describe("serializeJson", () => {
  it("accepts JSON values", () => {
    const value = { a: [1, "two", null, true, { b: -0.5 }], "": "", __proto__x: {} };
    expect(JSON.parse(serializeJson(value, "v"))).toEqual(value);
  });

  it.each([
    ["a function", () => 1],
    ["a symbol", Symbol("s")],
    ["a BigInt", 10n],
    ["undefined", undefined],
    ["NaN", Number.NaN],
    ["Infinity", Number.POSITIVE_INFINITY],
    ["a Date", new Date()],
    ["a Map", new Map()],
    ["a class instance", new (class Thing {})()],
    ["a nested function", { a: { b: [() => 1] } }],
    ["a sparse array", Object.assign(new Array(3), { 0: 1, 2: 3 })],
  ])("refuses %s with INVALID_VALUE", (_, value) => {
    expect(() => serializeJson(value, "v")).toThrowError(StowageError);
    try {
      serializeJson(value, "v");
    } catch (error) {
      expect((error as StowageError).code).toBe("INVALID_VALUE");
    }
  });

  it("refuses cycles but accepts shared subtrees", () => {
    const shared = { x: 1 };
    expect(serializeJson({ a: shared, b: shared }, "v")).toBe('{"a":{"x":1},"b":{"x":1}}');
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => serializeJson(cyclic, "v")).toThrowError(/cycle/);
  });

  it("jsonText spells every JSON value as JSON.stringify does", () => {
    for (const n of [0, -0, 1, -1.5, 1e21, 1e-7, 5e-324, Number.MAX_SAFE_INTEGER, 2 ** 64, 0.1 + 0.2]) {
      expect(jsonText(n)).toBe(JSON.stringify(n));
    }
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const json = JSON.parse(JSON.stringify(value));
        expect(jsonText(json)).toBe(JSON.stringify(json));
      }),
      { numRuns: 2_000 },
    );
  });
});

describe("textBytes", () => {
  it("counts UTF-8 bytes as Buffer.byteLength does, short texts in JS included", () => {
    expect(textBytes("counter")).toBe(7);
    expect(textBytes("é€😀")).toBe(2 + 3 + 4);
    expect(textBytes("\uD800")).toBe(3); // a lone surrogate is written as U+FFFD
    expect(textBytes("\uDC00\uD800")).toBe(6); // a low then a high surrogate is no pair
    const unit = fc.constantFrom(
      "a",
      "é",
      "€",
      "😀",
      "\uD800",
      "\uDBFF",
      "\uDC00",
      "\uDFFF",
      "\u07FF",
      "\u0800",
    );
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ unit, maxLength: 40 }), fc.string({ unit: "binary", maxLength: 40 })),
        (text) => {
          expect(textBytes(text)).toBe(Buffer.byteLength(text));
        },
      ),
      { numRuns: 3_000 },
    );
  });
});
