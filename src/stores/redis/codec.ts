import { StowageError } from "../../core/errors.js";
import { setOwn } from "../../core/json.js";
import type {
  Attributes,
  ChannelState,
  ConnectionRef,
  JsonValue,
  LoginType,
  MetaPatch,
  SessionRecord,
} from "../../core/record.js";
import type { PeekedRecord, SessionDelta } from "../../core/store.js";

/**
 * Attribute fields carry this prefix so an attribute can never collide with a meta field
 * (`v`, `user`, `exp`, ...), with the alias fields, or with a rename mark.
 */
export const ATTRIBUTE_PREFIX = "a:";

/** Meta field names in the session hash; short, since every session stores them. */
const F = {
  version: "v",
  verifier: "verifier",
  createdAt: "created",
  rotatedAt: "rotated",
  expiresAt: "exp",
  idleExpiresAt: "idle",
  userId: "user",
  level: "level",
  loginType: "lt",
  lastLoginAt: "lla",
  language: "lang",
  channel: "chan",
  connection: "conn",
} as const;

/** An alias hash (what an old id becomes inside a rename's grace window). */
export interface AliasFields {
  /** The id it points to. */
  target: string;
  /** The old id's verifier. */
  verifier: string;
  /** When it stops resolving. */
  until: number;
}

/** What a delta writes: HSET arguments and HDEL fields (COMMIT finds the meta fields it acts on itself). */
export interface EncodedDelta {
  /** field, value, field, value, ... */
  set: string[];
  /** Fields to remove. */
  unset: string[];
  /** The new idle expiry, when the delta moves it (COMMIT_PLAIN takes it apart from the pairs). */
  idle: string | undefined;
  /** Whether `exp` or `user` changes: the user index follows, so only COMMIT will do. */
  indexed: boolean;
}

function attributeJson(key: string, value: JsonValue): string {
  const json = JSON.stringify(value);
  if (json === undefined) throw new StowageError("INVALID_VALUE", `attribute "${key}" is not a JSON value`);
  return json;
}

/** HSET arguments for a whole record at `version`; values in `encoded` are attribute JSON already. */
export function recordFields(
  record: SessionRecord,
  version: number,
  encoded?: Record<string, string>,
): string[] {
  const out = [
    F.version,
    String(version),
    F.verifier,
    record.verifier,
    F.createdAt,
    String(record.createdAt),
    F.rotatedAt,
    String(record.rotatedAt),
    F.expiresAt,
    String(record.expiresAt),
    F.idleExpiresAt,
    String(record.idleExpiresAt),
    F.level,
    String(record.level),
    F.loginType,
    record.loginType,
  ];
  if (record.userId !== undefined) out.push(F.userId, record.userId);
  if (record.lastLoginAt !== undefined) out.push(F.lastLoginAt, String(record.lastLoginAt));
  if (record.language !== undefined) out.push(F.language, record.language);
  if (record.channel) out.push(F.channel, JSON.stringify(record.channel));
  if (record.connection) out.push(F.connection, JSON.stringify(record.connection));
  for (const key of Object.keys(record.attributes)) {
    out.push(ATTRIBUTE_PREFIX + key, attributeJson(key, record.attributes[key]!));
  }
  if (encoded !== undefined)
    for (const key of Object.keys(encoded)) out.push(ATTRIBUTE_PREFIX + key, encoded[key]!);
  return out;
}

function metaValue(key: keyof MetaPatch, value: NonNullable<MetaPatch[keyof MetaPatch]>): string {
  if (key === "channel" || key === "connection") return JSON.stringify(value);
  return String(value);
}

/** The fields a delta changes, and nothing else. */
export function encodeDelta(delta: SessionDelta): EncodedDelta {
  const out: EncodedDelta = { set: [], unset: [], idle: undefined, indexed: false };
  const set = delta.set;
  if (set !== undefined) {
    for (const key in set) {
      if (Object.hasOwn(set, key)) out.set.push(ATTRIBUTE_PREFIX + key, attributeJson(key, set[key]!));
    }
  }
  const meta = delta.meta;
  if (meta !== undefined) {
    for (const key in meta) {
      if (!Object.hasOwn(meta, key)) continue;
      const value = meta[key as keyof MetaPatch];
      if (value === undefined) continue;
      const field = F[key as keyof MetaPatch];
      if (field === F.expiresAt || field === F.userId) out.indexed = true;
      if (value === null) out.unset.push(field);
      else {
        const text = metaValue(key as keyof MetaPatch, value);
        if (field === F.idleExpiresAt) out.idle = text;
        out.set.push(field, text);
      }
    }
  }
  const unset = delta.unset;
  if (unset !== undefined && unset.length > 0) {
    // A key both unset and set keeps the set (the later write), so only the others are deleted.
    for (const key of unset) {
      if (set === undefined || !Object.hasOwn(set, key)) out.unset.push(ATTRIBUTE_PREFIX + key);
    }
  }
  return out;
}

/** The alias a hash holds, if it is one. */
export function decodeAlias(hash: Record<string, string>): AliasFields | undefined {
  const target = hash.alias;
  if (target === undefined) return undefined;
  return { target, verifier: hash.verifier ?? "", until: Number(hash.until) };
}

/** The record a hash holds, or undefined for an empty hash or an alias. Builds fresh objects. */
export function decodeRecord(id: string, hash: Record<string, string>): SessionRecord | undefined;
/** With `lazy`, attribute values stay JSON text in `encoded` (what `peek` hands out). */
export function decodeRecord(
  id: string,
  hash: Record<string, string>,
  lazy: boolean,
): PeekedRecord | undefined;
export function decodeRecord(
  id: string,
  hash: Record<string, string>,
  lazy = false,
): PeekedRecord | undefined {
  const version = hash[F.version];
  if (version === undefined) return undefined;
  const attributes: Attributes = {};
  const encoded: Record<string, string> | undefined = lazy ? {} : undefined;
  for (const field of Object.keys(hash)) {
    if (!field.startsWith(ATTRIBUTE_PREFIX)) continue;
    const key = field.slice(ATTRIBUTE_PREFIX.length);
    if (encoded !== undefined) setOwn(encoded, key, hash[field]!);
    else setOwn(attributes, key, JSON.parse(hash[field]!) as JsonValue);
  }
  const record: PeekedRecord = {
    id,
    verifier: hash[F.verifier] ?? "",
    version: Number(version),
    createdAt: Number(hash[F.createdAt]),
    rotatedAt: Number(hash[F.rotatedAt]),
    expiresAt: Number(hash[F.expiresAt]),
    idleExpiresAt: Number(hash[F.idleExpiresAt]),
    level: Number(hash[F.level]),
    loginType: (hash[F.loginType] ?? "unspecified") as LoginType,
    attributes,
  };
  const userId = hash[F.userId];
  if (userId !== undefined) record.userId = userId;
  const lastLoginAt = hash[F.lastLoginAt];
  if (lastLoginAt !== undefined) record.lastLoginAt = Number(lastLoginAt);
  const language = hash[F.language];
  if (language !== undefined) record.language = language;
  const channel = hash[F.channel];
  if (channel !== undefined) record.channel = JSON.parse(channel) as ChannelState;
  const connection = hash[F.connection];
  if (connection !== undefined) record.connection = JSON.parse(connection) as ConnectionRef;
  if (encoded !== undefined) record.encoded = encoded;
  return record;
}
