import type { Attributes, JsonValue, MetaPatch, SessionRecord } from "../core/record.js";

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

/**
 * A deep copy of a record with exactly the fields of SessionRecord: extra properties a caller left on
 * it (such as `via` from a previous `get`) are not stored.
 */
export function copyRecord(source: SessionRecord): SessionRecord {
  const out: SessionRecord = {
    id: source.id,
    verifier: source.verifier,
    version: source.version,
    createdAt: source.createdAt,
    rotatedAt: source.rotatedAt,
    expiresAt: source.expiresAt,
    idleExpiresAt: source.idleExpiresAt,
    level: source.level,
    loginType: source.loginType,
    attributes: cloneAttributes(source.attributes),
  };
  if (source.userId !== undefined) out.userId = source.userId;
  if (source.lastLoginAt !== undefined) out.lastLoginAt = source.lastLoginAt;
  if (source.language !== undefined) out.language = source.language;
  if (source.channel)
    out.channel = { algorithm: source.channel.algorithm, sealedSecret: source.channel.sealedSecret };
  if (source.connection) out.connection = { id: source.connection.id, node: source.connection.node };
  return out;
}

/** A copy of a meta patch whose object-valued fields are not shared with the caller. */
export function copyMeta(meta: MetaPatch): MetaPatch {
  const out: MetaPatch = { ...meta };
  if (meta.channel)
    out.channel = { algorithm: meta.channel.algorithm, sealedSecret: meta.channel.sealedSecret };
  if (meta.connection) out.connection = { id: meta.connection.id, node: meta.connection.node };
  return out;
}
