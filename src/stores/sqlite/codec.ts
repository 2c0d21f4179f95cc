import { StowageError } from "../../core/errors.js";
import { attributesJson } from "../../core/json.js";
import type {
  Attributes,
  ChannelState,
  ConnectionRef,
  LoginType,
  MetaPatch,
  SessionRecord,
} from "../../core/record.js";

/** A row of `stowage_sessions` as better-sqlite3 returns it. */
export interface SessionRow {
  id: string;
  verifier: string;
  version: number;
  created_at: number;
  rotated_at: number;
  expires_at: number;
  idle_expires_at: number;
  user_id: string | null;
  level: number;
  login_type: string;
  last_login_at: number | null;
  language: string | null;
  attributes: string;
  channel: string | null;
  connection: string | null;
}

/** Column list shared by every SELECT that decodes a row. */
export const SESSION_COLUMNS =
  "id, verifier, version, created_at, rotated_at, expires_at, idle_expires_at, user_id, level, login_type, " +
  "last_login_at, language, attributes, channel, connection";

// The message names the field only: a stored value may hold user data.
function malformed(field: string, cause?: unknown): StowageError {
  const message = `SQLite store holds a malformed ${field} value`;
  return new StowageError("STORE_UNAVAILABLE", message, cause === undefined ? undefined : { cause });
}

function parseJson(field: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw malformed(field, error);
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Parses stored attributes; JSON.parse keeps keys such as `__proto__` as own data properties. */
export function parseAttributes(text: string): Attributes {
  const value = parseJson("attributes", text);
  if (!isPlainObject(value)) throw malformed("attributes");
  return value as Attributes;
}

function parseChannel(text: string): ChannelState {
  const value = parseJson("channel", text);
  if (
    !isPlainObject(value) ||
    typeof value.algorithm !== "string" ||
    typeof value.sealedSecret !== "string"
  ) {
    throw malformed("channel");
  }
  return { algorithm: value.algorithm, sealedSecret: value.sealedSecret };
}

function parseConnection(text: string): ConnectionRef {
  const value = parseJson("connection", text);
  if (
    !isPlainObject(value) ||
    typeof value.id !== "string" ||
    typeof value.node !== "string" ||
    typeof value.generation !== "number" ||
    typeof value.received !== "number" ||
    typeof value.key !== "string"
  ) {
    throw malformed("connection");
  }
  const { id, node, generation, received, key } = value;
  return { id, node, generation, received, key };
}

/** Decodes a row into a fresh record the caller owns. */
export function rowToRecord(row: SessionRow): SessionRecord {
  const record: SessionRecord = {
    id: row.id,
    verifier: row.verifier,
    version: row.version,
    createdAt: row.created_at,
    rotatedAt: row.rotated_at,
    expiresAt: row.expires_at,
    idleExpiresAt: row.idle_expires_at,
    level: row.level,
    loginType: row.login_type as LoginType,
    attributes: parseAttributes(row.attributes),
  };
  if (row.user_id !== null) record.userId = row.user_id;
  if (row.last_login_at !== null) record.lastLoginAt = row.last_login_at;
  if (row.language !== null) record.language = row.language;
  if (row.channel !== null) record.channel = parseChannel(row.channel);
  if (row.connection !== null) record.connection = parseConnection(row.connection);
  return record;
}

/** Encodes a record for an INSERT; `version` is given separately because rename overrides it. */
export function recordToParams(
  record: SessionRecord,
  version: number,
  encoded?: Record<string, string>,
): SessionRow {
  return {
    id: record.id,
    verifier: record.verifier,
    version,
    created_at: record.createdAt,
    rotated_at: record.rotatedAt,
    expires_at: record.expiresAt,
    idle_expires_at: record.idleExpiresAt,
    user_id: record.userId ?? null,
    level: record.level,
    login_type: record.loginType,
    last_login_at: record.lastLoginAt ?? null,
    language: record.language ?? null,
    attributes:
      encoded === undefined ? JSON.stringify(record.attributes) : attributesJson(record.attributes, encoded),
    channel: record.channel ? JSON.stringify(record.channel) : null,
    connection: record.connection ? JSON.stringify(record.connection) : null,
  };
}

/**
 * Applies per-key changes to stored attributes. Keys are defined, not assigned: assigning a user key
 * such as `__proto__` would call the prototype setter instead of storing the key.
 */
export function mergeAttributes(
  stored: string,
  set: Attributes | undefined,
  unset: readonly string[] | undefined,
): string {
  const attributes = parseAttributes(stored);
  if (unset) for (const key of unset) delete attributes[key];
  if (set) {
    for (const key of Object.keys(set)) {
      Object.defineProperty(attributes, key, {
        value: set[key],
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
  }
  return JSON.stringify(attributes);
}

/** Applies a meta patch to a row in place; `null` clears an optional column. */
export function applyMetaToRow(row: SessionRow, meta: MetaPatch): void {
  if (meta.expiresAt !== undefined) row.expires_at = meta.expiresAt;
  if (meta.idleExpiresAt !== undefined) row.idle_expires_at = meta.idleExpiresAt;
  if (meta.level !== undefined) row.level = meta.level;
  if (meta.loginType !== undefined) row.login_type = meta.loginType;
  if (meta.userId !== undefined) row.user_id = meta.userId;
  if (meta.lastLoginAt !== undefined) row.last_login_at = meta.lastLoginAt;
  if (meta.language !== undefined) row.language = meta.language;
  if (meta.channel !== undefined) row.channel = meta.channel === null ? null : JSON.stringify(meta.channel);
  if (meta.connection !== undefined) {
    row.connection = meta.connection === null ? null : JSON.stringify(meta.connection);
  }
}
