import { cloneAttributes } from "../../core/json.js";
import type { Attributes, ChannelState, MetaPatch, SessionRecord } from "../../core/record.js";

/**
 * A deep copy of a record with exactly the fields of SessionRecord: extra properties a caller left on
 * it (such as `via` from a previous `get`) are not stored.
 */
export function copyRecord(source: SessionRecord): SessionRecord {
  return recordWith(source, cloneAttributes(source.attributes));
}

/**
 * A copy of a record whose attributes object is new but whose attribute values are the store's own: what
 * `peek` hands out. Safe because the store never changes a value in place, it only replaces or removes it.
 */
export function borrowRecord(source: SessionRecord): SessionRecord {
  return recordWith(source, { ...source.attributes });
}

function recordWith(source: SessionRecord, attributes: Attributes): SessionRecord {
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
    attributes,
  };
  if (source.userId !== undefined) out.userId = source.userId;
  if (source.lastLoginAt !== undefined) out.lastLoginAt = source.lastLoginAt;
  if (source.language !== undefined) out.language = source.language;
  if (source.channel) out.channel = copyChannel(source.channel);
  if (source.connection) out.connection = { ...source.connection };
  return out;
}

/** Only the fields of ChannelState, so nothing a caller left on the object is kept. */
export function copyChannel(channel: ChannelState): ChannelState {
  return { algorithm: channel.algorithm, sealedSecret: channel.sealedSecret };
}

/** A copy of a meta patch whose object-valued fields are not shared with the caller. */
export function copyMeta(meta: MetaPatch): MetaPatch {
  const out: MetaPatch = { ...meta };
  if (meta.channel) out.channel = copyChannel(meta.channel);
  if (meta.connection) out.connection = { ...meta.connection };
  return out;
}
