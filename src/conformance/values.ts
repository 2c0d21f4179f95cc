import type { Attributes } from "../core/record.js";
import { makeRecord, type StoreGetter } from "./helpers.js";
import type { ConformanceRunner } from "./runner.js";

/** Attribute values and keys a store must keep exactly (valid Unicode, JSON only). */
function tricky(): Attributes {
  return {
    nested: { a: { b: { c: [1, { d: [true, null, "x"] }] } }, list: [[1, 2], [], [{}]] },
    emoji: "😀 👩‍👩‍👧‍👦 🏳️‍🌈",
    cjk: "漢字かなカナ 한국어",
    rtl: "עברית العربية",
    combining: "e\u0301 a\u0308 n\u0303",
    controls: "tab\there\nnew line\r\n\u0001\u001f\u007f",
    quotes: "\"double\" 'single' \\back\\slash `tick` {brace} [bracket] $dollar %percent",
    empty: "",
    emptyList: [],
    emptyObject: {},
    yes: true,
    no: false,
    nothing: null,
    zero: 0,
    negative: -42,
    float: 0.1 + 0.2,
    negativeFloat: -2.5e-3,
    tiny: 1e-7,
    huge: 1.7976931348623157e308,
    maxSafe: 2 ** 53 - 1,
    minSafe: -(2 ** 53 - 1),
    "key.with.dots": "dots",
    "key:with:colons": "colons",
    "key with spaces": "spaces",
    "ключ-ünïcødé-鍵": "unicode key",
    "": "empty key",
    version: "an attribute named like a meta field",
    id: "another",
  };
}

/** An object whose own keys are `__proto__` and `constructor`, as JSON.parse makes it. */
function prototypeKeys(): Attributes {
  return JSON.parse(
    '{"__proto__":{"polluted":"yes"},"constructor":{"prototype":{"polluted":"yes"}},' +
      '"inner":{"__proto__":{"polluted":"yes"},"constructor":"c"}}',
  ) as Attributes;
}

function expectPrototypeKeysIntact(
  expect: ConformanceRunner["expect"],
  attributes: Attributes | undefined,
): void {
  expect(attributes).toBeDefined();
  const attrs = attributes!;
  expect(Object.hasOwn(attrs, "__proto__")).toBe(true);
  expect(Object.hasOwn(attrs, "constructor")).toBe(true);
  expect(Object.getOwnPropertyDescriptor(attrs, "__proto__")?.value).toEqual({ polluted: "yes" });
  expect(Object.getOwnPropertyDescriptor(attrs, "constructor")?.value).toEqual({
    prototype: { polluted: "yes" },
  });
  const inner = attrs.inner as Attributes;
  expect(Object.hasOwn(inner, "__proto__")).toBe(true);
  expect(Object.getOwnPropertyDescriptor(inner, "__proto__")?.value).toEqual({ polluted: "yes" });
  expect(inner.constructor).toBe("c");
  expect(Object.getPrototypeOf(attrs)).not.toHaveProperty("polluted");
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  expect(Object.prototype).not.toHaveProperty("polluted");
}

function bigList(): string[] {
  // ~60 KiB of strings.
  return Array.from({ length: 600 }, (_, i) => `${String(i).padStart(4, "0")}-${"xé漢".repeat(32)}`);
}

function manyAttributes(): Attributes {
  const attributes: Attributes = {};
  for (let i = 0; i < 200; i++) attributes[`attr-${i}`] = { index: i, label: `value ${i}` };
  return attributes;
}

export function valueTests({ it, expect }: ConformanceRunner, getStore: StoreGetter): void {
  it("round-trips tricky values and keys through insert", async () => {
    const store = getStore();
    const record = makeRecord({ attributes: tricky() });
    await store.insert(record);
    expect((await store.get(record.id))?.attributes).toEqual(tricky());
  });

  it("round-trips tricky values and keys through commit", async () => {
    const store = getStore();
    const record = makeRecord();
    await store.insert(record);
    await store.commit(record.id, { set: tricky() });
    expect((await store.get(record.id))?.attributes).toEqual(tricky());
  });

  it("unsets keys with dots, colons, spaces and unicode", async () => {
    const store = getStore();
    const record = makeRecord({ attributes: tricky() });
    await store.insert(record);
    const gone = ["key.with.dots", "key:with:colons", "key with spaces", "ключ-ünïcødé-鍵", ""];
    await store.commit(record.id, { unset: gone });
    const expected = tricky();
    for (const key of gone) delete expected[key];
    expect((await store.get(record.id))?.attributes).toEqual(expected);
  });

  it("keeps __proto__ and constructor as plain own keys through insert, without pollution", async () => {
    const store = getStore();
    const record = makeRecord({ attributes: prototypeKeys() });
    await store.insert(record);
    expectPrototypeKeysIntact(expect, (await store.get(record.id))?.attributes);
  });

  it("keeps __proto__ and constructor as plain own keys through commit, without pollution", async () => {
    const store = getStore();
    const record = makeRecord({ attributes: { other: 1 } });
    await store.insert(record);
    await store.commit(record.id, { set: prototypeKeys() });
    const attributes = (await store.get(record.id))?.attributes;
    expectPrototypeKeysIntact(expect, attributes);
    expect(attributes?.other).toBe(1);
    await store.commit(record.id, { unset: ["__proto__", "constructor"] });
    const after = (await store.get(record.id))?.attributes ?? {};
    expect(Object.hasOwn(after, "__proto__")).toBe(false);
    expect(Object.hasOwn(after, "constructor")).toBe(false);
    expect(Object.keys(after).sort()).toEqual(["inner", "other"]);
  });

  it("round-trips a ~60 KiB array of strings", async () => {
    const store = getStore();
    const record = makeRecord({ attributes: { big: bigList() } });
    await store.insert(record);
    expect((await store.get(record.id))?.attributes.big).toEqual(bigList());
    await store.commit(record.id, { set: { big2: bigList().reverse() } });
    const got = await store.get(record.id);
    expect(got?.attributes.big).toEqual(bigList());
    expect(got?.attributes.big2).toEqual(bigList().reverse());
  });

  it("round-trips 200 attributes in one record, by insert and by commit", async () => {
    const store = getStore();
    const inserted = makeRecord({ attributes: manyAttributes() });
    await store.insert(inserted);
    expect((await store.get(inserted.id))?.attributes).toEqual(manyAttributes());
    const committed = makeRecord();
    await store.insert(committed);
    await store.commit(committed.id, { set: manyAttributes() });
    expect((await store.get(committed.id))?.attributes).toEqual(manyAttributes());
  });
}
