import { attributesJson } from "../../core/json.js";
import type { Attributes, ChannelState, ConnectionRef, LoginType, SessionRecord } from "../../core/record.js";
import { copyChannel } from "./copy.js";

// A record at rest, as one JSON array. The id is left out (the Map key holds it), fields go by position
// instead of by name, the other three times count from createdAt (7 digits instead of 13), the login
// type is its index in LOGIN_TYPES, and absent optional fields are null, trailing ones dropped:
// [verifier, version, createdAt, rotatedAt, expiresAt, idleExpiresAt, level, loginType, attributes,
//  userId, lastLoginAt, language, channel, connection]
type Packed = [
  verifier: string,
  version: number,
  createdAt: number,
  rotatedAt: Since,
  expiresAt: Since,
  idleExpiresAt: Since,
  level: number,
  loginType: number | LoginType,
  attributes: Attributes,
  userId?: string | null,
  lastLoginAt?: number | null,
  language?: string | null,
  channel?: ChannelState | null,
  connection?: ConnectionRef | null,
];

/** A time as ms after createdAt, or, when that difference would not add back exactly, its own text. */
type Since = number | string;

const LOGIN_TYPES: readonly LoginType[] = ["unspecified", "human", "robot"];

/**
 * The text a record is kept as while nobody uses it: one string instead of a record object, its
 * attributes object, a heap number per timestamp and a string per value (about a third of the heap).
 * Being JSON, it is also a deep copy: nothing of the caller's objects is kept.
 */
export function pack(record: SessionRecord, encoded?: Record<string, string>): string {
  const base = record.createdAt;
  const loginType = LOGIN_TYPES.indexOf(record.loginType);
  const packed: Packed = [
    record.verifier,
    record.version,
    base,
    since(base, record.rotatedAt),
    since(base, record.expiresAt),
    since(base, record.idleExpiresAt),
    record.level,
    loginType < 0 ? record.loginType : loginType,
    record.attributes,
  ];
  // A hole before a field that is there comes out as null.
  if (record.userId !== undefined) packed[9] = record.userId;
  if (record.lastLoginAt !== undefined) packed[10] = record.lastLoginAt;
  if (record.language !== undefined) packed[11] = record.language;
  if (record.channel !== undefined) packed[12] = copyChannel(record.channel);
  if (record.connection !== undefined) packed[13] = { ...record.connection };
  // Attribute values given as JSON text (see `SessionStore.insertEncoded`) are spliced in, not parsed.
  const text =
    encoded === undefined
      ? JSON.stringify(packed)
      : `${JSON.stringify(packed.slice(0, 8)).slice(0, -1)},${attributesJson(record.attributes, encoded)}${
          packed.length > 9 ? `,${JSON.stringify(packed.slice(9)).slice(1)}` : "]"
        }`;
  // JSON.stringify returns a rope of up to a few pieces (96 B more than the text at ~170 characters), as
  // does the splice; reading a character flattens it, and the next scavenge keeps only the flat string.
  text.charCodeAt(0);
  return text;
}

/** The record `pack` made `text` of, as new objects with exactly the fields of SessionRecord. */
export function unpack(id: string, text: string): SessionRecord {
  const p = JSON.parse(text) as Packed;
  const base = p[2];
  const loginType = p[7];
  const record: SessionRecord = {
    id,
    verifier: p[0],
    version: p[1],
    createdAt: base,
    rotatedAt: at(base, p[3]),
    expiresAt: at(base, p[4]),
    idleExpiresAt: at(base, p[5]),
    level: p[6],
    loginType: typeof loginType === "number" ? LOGIN_TYPES[loginType]! : loginType,
    attributes: p[8],
  };
  if (p.length > 9) {
    if (p[9] != null) record.userId = p[9];
    if (p[10] != null) record.lastLoginAt = p[10];
    if (p[11] != null) record.language = p[11];
    if (p[12] != null) record.channel = p[12];
    if (p[13] != null) record.connection = p[13];
  }
  return record;
}

/** The user a packed record belongs to. */
export function packedUser(text: string): string | undefined {
  return (JSON.parse(text) as Packed)[9] ?? undefined;
}

function since(base: number, time: number): Since {
  const delta = time - base;
  return Number.isFinite(delta) && base + delta === time ? delta : String(time);
}

function at(base: number, since: Since): number {
  return typeof since === "number" ? base + since : Number(since);
}
