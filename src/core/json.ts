import { StowageError } from "./errors.js";
import type { Attributes, JsonValue } from "./record.js";

/**
 * Serializes the value of attribute `key`, which must survive JSON round-trip unchanged, or throws INVALID_VALUE.
 * Refuses what JSON.stringify would silently drop or change: functions, symbols, BigInt, undefined,
 * NaN/Infinity, cycles, objects that are not plain (Date, Map, class instances), and text that not every
 * store can keep exactly (see `isStorableText`).
 *
 * Fast path (docs/internals.md, bench row "express: a new session with 1 KB on every request (MemoryStore),
 * stowage vs express-session: instructions per request"): the text checks read the JSON text once instead
 * of each string of the value. JSON.stringify writes U+0000 and a lone surrogate as a \u escape, so a text
 * without "\u" has neither; one with it (a control character, a quoted backslash) gets the string-by-string
 * check. The walk looks for cycles only from MAX_NESTING levels down, which no session value reaches.
 */
export function serializeJson(value: unknown, key: string): string {
  assertShape(value, key, 0);
  const text = jsonText(value as JsonValue);
  if (text.includes("\\u")) assertStorableStrings(value as JsonValue, key);
  return text;
}

/**
 * JSON.stringify of a JSON value, with numbers, booleans and null spelled in JS: JSON.stringify is a
 * call into C++ even for a counter, while String() of a finite number is already its JSON text.
 */
export function jsonText(value: JsonValue): string {
  return typeof value === "number" || typeof value === "boolean" || value === null
    ? String(value)
    : JSON.stringify(value);
}

/**
 * The JSON text of an attribute bag whose values in `encoded` are JSON text already (see
 * `SessionStore.insertEncoded`): those go in as they are, the others are serialized.
 */
export function attributesJson(attributes: Attributes, encoded: Record<string, string>): string {
  let text = "";
  for (const key of Object.keys(attributes)) {
    text += `,${JSON.stringify(key)}:${jsonText(attributes[key]!)}`;
  }
  for (const key of Object.keys(encoded)) text += `,${JSON.stringify(key)}:${encoded[key]}`;
  return text === "" ? "{}" : `{${text.slice(1)}}`;
}

/** `attributes` with the values in `encoded` parsed into it, for a store without `insertEncoded`. */
export function decodeInto(attributes: Attributes, encoded: Record<string, string>): Attributes {
  for (const key of Object.keys(encoded)) setOwn(attributes, key, JSON.parse(encoded[key]!) as JsonValue);
  return attributes;
}

// Depth from which the walk keeps the objects on its path: a cycle makes the walk go deeper than any session
// value does, so above it no cycle bookkeeping is needed.
const MAX_NESTING = 64;

/**
 * Throws INVALID_VALUE unless the value is made of JSON's types only (its text is checked apart). `path`
 * holds the objects above `value` once the walk is MAX_NESTING deep.
 */
function assertShape(value: unknown, key: string, depth: number, path?: Set<object>): void {
  switch (typeof value) {
    case "string":
    case "boolean":
      return;
    case "number":
      if (!Number.isFinite(value)) throw invalid(key, "a non-finite number");
      return;
    case "object": {
      if (value === null) return;
      if (depth === MAX_NESTING) path = new Set();
      if (path !== undefined) {
        if (path.has(value)) throw invalid(key, "a cycle");
        path.add(value);
      }
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          if (!(i in value)) throw invalid(key, "a sparse array");
          assertShape(value[i], key, depth + 1, path);
        }
      } else {
        const proto = Object.getPrototypeOf(value);
        if (proto !== Object.prototype && proto !== null) throw invalid(key, "a non-plain object");
        for (const name of Object.keys(value)) {
          assertShape((value as Record<string, unknown>)[name], key, depth + 1, path);
        }
      }
      path?.delete(value);
      return;
    }
    default:
      throw invalid(key, `a ${typeof value}`);
  }
}

/** Throws INVALID_VALUE if a string or property name in the value is not storable (see `isStorableText`). */
function assertStorableStrings(value: JsonValue, key: string): void {
  if (typeof value === "string") {
    if (!isStorableText(value)) throw invalid(key, "a lone surrogate or U+0000 in a string");
    return;
  }
  if (typeof value !== "object" || value === null) return;
  if (Array.isArray(value)) {
    for (const item of value) assertStorableStrings(item, key);
    return;
  }
  for (const name of Object.keys(value)) {
    if (!isStorableText(name)) throw invalid(key, "a lone surrogate or U+0000 in a property name");
    assertStorableStrings(value[name]!, key);
  }
}

// The message is built only on failure: building it for every write would cost a string per set().
function invalid(key: string, found: string): StowageError {
  return new StowageError("INVALID_VALUE", `attribute "${key}" must be JSON; found ${found}`);
}

/**
 * True for text every store keeps exactly: well-formed UTF-16 without U+0000. Redis and SQLite turn a
 * lone surrogate into U+FFFD and PostgreSQL refuses it and U+0000 alike, so core refuses both for all.
 */
export function isStorableText(text: string): boolean {
  return text.isWellFormed() && !text.includes("\0");
}

/** Throws INVALID_VALUE unless `text` is storable; `what` names it, the text itself is never quoted. */
export function checkStorableText(text: string, what: string): void {
  if (!isStorableText(text))
    throw new StowageError("INVALID_VALUE", `${what} holds a lone surrogate or U+0000`);
}

/** Bytes one attribute counts against `maxAttributesBytes`: key, JSON value and a little framing. */
export function attributeBytes(key: string, json: string): number {
  return textBytes(key) + textBytes(json) + 4;
}

// Below this length a JS count beats Buffer.byteLength, which is a call into C++.
const SHORT_TEXT = 32;

/** UTF-8 length of a text, as Buffer.byteLength counts it (a lone surrogate as the 3 bytes of U+FFFD). */
export function textBytes(text: string): number {
  const n = text.length;
  if (n > SHORT_TEXT) return Buffer.byteLength(text);
  let bytes = n;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) bytes += 1;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < n && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 2; // a pair: 4 bytes for 2 code units
      i++;
    } else bytes += 2;
  }
  return bytes;
}

/** Bytes a whole attribute bag counts against `maxAttributesBytes`. */
export function attributesBytes(attributes: Record<string, unknown>): number {
  let total = 0;
  for (const key of Object.keys(attributes))
    total += attributeBytes(key, jsonText(attributes[key] as JsonValue));
  return total;
}

/**
 * Stores a key as a plain own property. A plain assignment of `__proto__` would replace the object's
 * prototype instead, so that one key goes through defineProperty.
 */
export function setOwn(target: Record<string, JsonValue>, key: string, value: JsonValue): void {
  if (key === "__proto__") {
    Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    target[key] = value;
  }
}

/** A deep copy of a JSON value; several times faster than structuredClone for session-sized data. */
export function cloneJson(value: JsonValue): JsonValue {
  if (typeof value !== "object" || value === null) return value;
  if (Array.isArray(value)) {
    const out: JsonValue[] = new Array(value.length);
    for (let i = 0; i < value.length; i++) out[i] = cloneJson(value[i]!);
    return out;
  }
  return cloneAttributes(value);
}

/** A deep copy of an attribute bag (or any JSON object). */
export function cloneAttributes(source: Attributes): Attributes {
  const out: Attributes = {};
  for (const key of Object.keys(source)) setOwn(out, key, cloneJson(source[key]!));
  return out;
}
