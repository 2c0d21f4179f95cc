import { StowageError } from "./errors.js";
import type { Attributes, JsonValue } from "./record.js";

/** Never consulted: assertJson only looks for cycles below an object. */
const NO_CYCLES: Set<object> = new Set();

/**
 * Serializes the value of attribute `key`, which must survive JSON round-trip unchanged, or throws INVALID_VALUE.
 * Refuses what JSON.stringify would silently drop or change: functions, symbols, BigInt, undefined,
 * NaN/Infinity, cycles, objects that are not plain (Date, Map, class instances), and text that not every
 * store can keep exactly (see `isStorableText`).
 */
export function serializeJson(value: unknown, key: string): string {
  // Most values a request writes are flat (a counter, a flag, a name): no cycle bookkeeping for them.
  if (typeof value === "object" && value !== null) assertJson(value, key, new Set());
  else assertJson(value, key, NO_CYCLES);
  return jsonText(value as JsonValue);
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

function assertJson(value: unknown, key: string, seen: Set<object>): asserts value is JsonValue {
  switch (typeof value) {
    case "string":
      if (!isStorableText(value)) throw invalid(key, "a lone surrogate or U+0000 in a string");
      return;
    case "boolean":
      return;
    case "number":
      if (!Number.isFinite(value)) throw invalid(key, "a non-finite number");
      return;
    case "object": {
      if (value === null) return;
      if (seen.has(value)) throw invalid(key, "a cycle");
      seen.add(value);
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          if (!(i in value)) throw invalid(key, "a sparse array");
          assertJson(value[i], key, seen);
        }
      } else {
        const proto = Object.getPrototypeOf(value);
        if (proto !== Object.prototype && proto !== null) throw invalid(key, "a non-plain object");
        for (const name of Object.keys(value)) {
          if (!isStorableText(name)) throw invalid(key, "a lone surrogate or U+0000 in a property name");
          assertJson((value as Record<string, unknown>)[name], key, seen);
        }
      }
      seen.delete(value);
      return;
    }
    default:
      throw invalid(key, `a ${typeof value}`);
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
