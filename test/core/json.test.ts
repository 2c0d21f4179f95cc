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

  it.each([
    ["a lone surrogate in a string", { a: ["ok", "x\uD800"] }, /lone surrogate or U\+0000 in a string/],
    ["U+0000 in a string", "a\0b", /lone surrogate or U\+0000 in a string/],
    ["a lone surrogate in a property name", { a: { "\uDC00": 1 } }, /in a property name/],
    ["U+0000 in a property name", [{ "k\0": 1 }], /in a property name/],
  ])("refuses %s", (_, value, message) => {
    expect(() => serializeJson(value, "v")).toThrowError(message);
  });

  it("accepts text whose JSON has escapes: control characters, backslashes, surrogate pairs", () => {
    const value = { "tab\t": "\u001f", path: "C:\\users\\u", emoji: "😀", "\\u0000": "\\ud800" };
    expect(JSON.parse(serializeJson(value, "v"))).toEqual(value);
  });

  it("finds a cycle, a sparse array and a non-plain object below any depth, and accepts deep values", () => {
    const nest = (depth: number, leaf: unknown): unknown => {
      let value = leaf;
      for (let i = 0; i < depth; i++) value = i % 2 === 0 ? { next: value } : [value];
      return value;
    };
    expect(JSON.parse(serializeJson(nest(200, "leaf"), "v"))).toEqual(nest(200, "leaf"));
    const shared = { x: 1 };
    expect(() => serializeJson(nest(100, [shared, shared]), "v")).not.toThrow();
    const cyclic: Record<string, unknown> = {};
    cyclic.self = nest(90, cyclic);
    expect(() => serializeJson(nest(10, cyclic), "v")).toThrowError(/a cycle/);
    expect(() => serializeJson(nest(100, new Date()), "v")).toThrowError(/a non-plain object/);
    expect(() => serializeJson(nest(100, Object.assign(new Array(2), { 1: 1 })), "v")).toThrowError(
      /a sparse array/,
    );
    expect(() => serializeJson(nest(100, { f: () => 1 }), "v")).toThrowError(/a function/);
  });

  it("refuses exactly what the string-by-string check refuses", () => {
    const text = fc.string({
      unit: fc.constantFrom("a", "\\", "u", "\0", "\uD800", "\uDC00", "\u001f", "😀"),
    });
    fc.assert(
      fc.property(fc.dictionary(text, fc.oneof(text, fc.array(text))), (value) => {
        const storable = (t: string) => t.isWellFormed() && !t.includes("\0");
        const ok = Object.entries(value).every(
          ([k, v]) => storable(k) && (Array.isArray(v) ? v.every(storable) : storable(v)),
        );
        if (ok) expect(JSON.parse(serializeJson(value, "v"))).toEqual(value);
        else expect(() => serializeJson(value, "v")).toThrowError(/lone surrogate or U\+0000/);
      }),
      { numRuns: 2_000 },
    );
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
