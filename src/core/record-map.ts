import { setOwn } from "./json.js";
import { type Attributes, applyMeta, type SessionRecord } from "./record.js";
import { type SessionState, sessionState, UNSET } from "./session-state.js";
import type { PeekedRecord, StoredRecord } from "./store.js";

// Between what a store keeps (SessionRecord) and what a live session holds (SessionState).

/** A loaded session's state from its record; `borrowed` when the store lent the record (see `peek`). */
export function fromRecord(
  record: PeekedRecord,
  token: string,
  secret: string,
  borrowed: boolean,
): SessionState {
  return sessionState({
    id: record.id,
    token,
    verifier: record.via ? record.via.verifier : record.verifier,
    secret,
    storedId: record.id,
    version: record.version,
    createdAt: record.createdAt,
    rotatedAt: record.rotatedAt,
    expiresAt: record.expiresAt,
    idleExpiresAt: record.idleExpiresAt,
    userId: record.userId,
    level: record.level,
    loginType: record.loginType,
    lastLoginAt: record.lastLoginAt,
    language: record.language,
    channel: record.channel,
    // A lent record's attributes object is the store's own: the session gets its own bag of the same values.
    attributes: borrowed ? { ...record.attributes } : record.attributes,
    borrowed,
    encoded: record.encoded,
    newAt: undefined,
  });
}

/** The record a new session's first commit inserts. */
export function toRecord(s: SessionState): SessionRecord {
  const record: SessionRecord = {
    id: s.id,
    verifier: s.verifier,
    version: 1,
    createdAt: s.createdAt,
    rotatedAt: s.rotatedAt,
    expiresAt: s.expiresAt,
    idleExpiresAt: s.idleExpiresAt,
    level: s.level,
    loginType: s.loginType,
    attributes: { ...s.attributes },
  };
  if (s.userId !== undefined) record.userId = s.userId;
  if (s.lastLoginAt !== undefined) record.lastLoginAt = s.lastLoginAt;
  if (s.language !== undefined) record.language = s.language;
  if (s.channel !== undefined) record.channel = s.channel;
  return record;
}

/** The fresh stored record with this session's pending changes applied on top. */
export function mergeRecord(fresh: StoredRecord, s: SessionState): SessionRecord {
  const { via: _via, ...record } = fresh;
  const attributes: Attributes = { ...record.attributes };
  if (s.pending) {
    for (const [key, value] of s.pending) {
      if (value === UNSET) delete attributes[key];
      else setOwn(attributes, key, value);
    }
  }
  record.attributes = attributes;
  applyMeta(record, s.meta);
  return record;
}

/** Takes the meta fields of a record the store now holds (after a rename read it back). */
export function applyRecordMeta(s: SessionState, r: SessionRecord): void {
  s.userId = r.userId;
  s.level = r.level;
  s.loginType = r.loginType;
  s.lastLoginAt = r.lastLoginAt;
  s.language = r.language;
  s.channel = r.channel;
  s.expiresAt = r.expiresAt;
}
