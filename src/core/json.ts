import { StowageError } from "./errors.js";
import type { Attributes, JsonValue } from "./record.js";

/**
 * Serializes a value that must survive JSON round-trip unchanged, or throws INVALID_VALUE.
 * Refuses what JSON.stringify would silently drop or change: functions, symbols, BigInt, undefined,
 * NaN/Infinity, cycles, and objects that are not plain (Date, Map, class instances).
 */
export function serializeJson(value: unknown, what: string): string {
  assertJson(value, what, new Set());
  return JSON.stringify(value);
}

function assertJson(value: unknown, what: string, seen: Set<object>): asserts value is JsonValue {
  switch (typeof value) {
    case "string":
    case "boolean":
      return;
    case "number":
      if (!Number.isFinite(value)) throw invalid(what, "a non-finite number");
      return;
    case "object": {
      if (value === null) return;
      if (seen.has(value)) throw invalid(what, "a cycle");
      seen.add(value);
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          if (!(i in value)) throw invalid(what, "a sparse array");
          assertJson(value[i], what, seen);
        }
      } else {
        const proto = Object.getPrototypeOf(value);
        if (proto !== Object.prototype && proto !== null) throw invalid(what, "a non-plain object");
        for (const key of Object.keys(value)) {
          assertJson((value as Record<string, unknown>)[key], what, seen);
        }
      }
      seen.delete(value);
      return;
    }
    default:
      throw invalid(what, `a ${typeof value}`);
  }
}

function invalid(what: string, found: string): StowageError {
  return new StowageError("INVALID_VALUE", `${what} must be JSON; found ${found}`);
}

/** Bytes one attribute counts against `maxAttributesBytes`: key, JSON value and a little framing. */
export function attributeBytes(key: string, json: string): number {
  return Buffer.byteLength(key) + Buffer.byteLength(json) + 4;
}

/** Bytes a whole attribute bag counts against `maxAttributesBytes`. */
export function attributesBytes(attributes: Record<string, unknown>): number {
  let total = 0;
  for (const key of Object.keys(attributes)) total += attributeBytes(key, JSON.stringify(attributes[key]));
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
