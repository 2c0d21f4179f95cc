import { StowageError } from "./errors.js";
import { cloneJson, setOwn } from "./json.js";
import type { SessionLease } from "./lease.js";
import type { Attributes, JsonValue, LoginType, MetaPatch, SessionRecord } from "./record.js";
import { type IssuedToken, issueToken } from "./tokens.js";

// A session's state, apart from the public Session class that wraps it: the manager and the commit
// engine read and write it through the `state` symbol. Attribute values may be lent by the store (see
// `PeekedRecord`): `borrowed` says so, `owned` lists the keys copied since, and `encoded` holds values
// still as JSON text. `readAttribute` reconciles the three on each read; docs/internals.md explains why.

/** Why the id is being regenerated at the next commit. */
export type RegenerateReason = "login" | "logout" | "rotation" | "explicit";

/** Internal state of a session, shared with the manager through the `state` symbol. */
export interface SessionState {
  id: string;
  token: string;
  verifier: string;
  secret: string;
  /** The id the record has in the store; undefined until it is written. Differs from `id` while a new id waits for commit. */
  storedId: string | undefined;
  /** A new session is written on commit only when this is set (something was stored, or save() forced it). */
  dirty: boolean;
  version: number;
  createdAt: number;
  rotatedAt: number;
  expiresAt: number;
  idleExpiresAt: number;
  userId: string | undefined;
  level: number;
  loginType: LoginType;
  lastLoginAt: number | undefined;
  language: string | undefined;
  channel: SessionRecord["channel"];
  attributes: Attributes;
  /** Attribute values may be the store's own objects (loaded through `peek`): each is copied on first read. */
  borrowed: boolean;
  /** Keys whose values are this session's own although `borrowed` is set: copied, set or updated since. */
  owned: Set<string> | undefined;
  /** Attributes still as JSON text (loaded through `peek`), parsed on first read; not in `attributes`. */
  encoded: Record<string, string> | undefined;
  /** Changes to write at the next commit: a key's new value, or UNSET for a removal. Created on first change. */
  pending: Map<string, JsonValue | typeof UNSET> | undefined;
  meta: MetaPatch;
  regenerate: { reason: RegenerateReason; graceMs: number } | undefined;
  /** Id to delete on commit (logout drops the old record and starts blank). */
  dropId: string | undefined;
  ended: boolean;
  /** Bytes of each attribute's key + JSON value; computed on the first write. */
  sizes: Map<string, number> | undefined;
  totalBytes: number;
  /** Commits completed on this object; per-commit flags compare against it. */
  commits: number;
  newAt: number | undefined;
  loginAt: number | undefined;
  oldId: string | undefined;
  oldIdAt: number | undefined;
  lease: SessionLease | undefined;
  /** The last commit in line, while any runs. */
  committing: Promise<unknown> | undefined;
  /** Commits started and not yet settled. */
  queued: number;
  /**
   * Set on a connection session: the holder's generation. Its commits are then conditional, and one that
   * finds another generation stored fails with SESSION_ENDED (the connection was replaced by a resume).
   */
  generation: number | undefined;
  /** A connection session's own idle lifetime (its resume window); undefined: the manager's. */
  idleTimeout: number | undefined;
}

/** Marks a pending removal in `SessionState.pending`. */
export const UNSET: unique symbol = Symbol("stowage.unset");

/** Symbol under which a session exposes its state to the manager. */
export const state: unique symbol = Symbol("stowage.session");

/**
 * Gives the session its next id and token at once, so an adapter can set the cookie before the response
 * goes out; the commit renames the stored record to it. A second call before the commit keeps the token.
 */
export function issueNextToken(s: SessionState, reason: RegenerateReason, graceMs: number): void {
  if (s.regenerate) {
    s.regenerate = reason === "login" ? { reason, graceMs: 0 } : s.regenerate;
    return;
  }
  s.oldId = s.id;
  s.oldIdAt = s.commits;
  adopt(s, issueToken());
  s.regenerate = { reason, graceMs };
}

export function adopt(s: SessionState, issued: IssuedToken): void {
  s.id = issued.id;
  s.token = issued.token;
  s.verifier = issued.verifier;
  s.secret = issued.token.slice(issued.id.length + 1);
}

/** What differs between a blank new session's state and a loaded one's; the rest starts the same. */
export type StateInit = Pick<
  SessionState,
  | "id"
  | "token"
  | "verifier"
  | "secret"
  | "storedId"
  | "version"
  | "createdAt"
  | "rotatedAt"
  | "expiresAt"
  | "idleExpiresAt"
  | "userId"
  | "level"
  | "loginType"
  | "lastLoginAt"
  | "language"
  | "channel"
  | "attributes"
  | "borrowed"
  | "encoded"
  | "newAt"
>;

/** A session's state from what differs between a new and a loaded session, with nothing pending. */
export function sessionState(init: StateInit): SessionState {
  return {
    id: init.id,
    token: init.token,
    verifier: init.verifier,
    secret: init.secret,
    storedId: init.storedId,
    dirty: false,
    version: init.version,
    createdAt: init.createdAt,
    rotatedAt: init.rotatedAt,
    expiresAt: init.expiresAt,
    idleExpiresAt: init.idleExpiresAt,
    userId: init.userId,
    level: init.level,
    loginType: init.loginType,
    lastLoginAt: init.lastLoginAt,
    language: init.language,
    channel: init.channel,
    attributes: init.attributes,
    borrowed: init.borrowed,
    owned: undefined,
    encoded: init.encoded,
    pending: undefined,
    meta: {},
    regenerate: undefined,
    dropId: undefined,
    ended: false,
    sizes: undefined,
    totalBytes: 0,
    commits: 0,
    newAt: init.newAt,
    loginAt: undefined,
    oldId: undefined,
    oldIdAt: undefined,
    lease: undefined,
    committing: undefined,
    queued: 0,
    generation: undefined,
    // A session whose idle expiry reaches its absolute one was given a lifetime of its own (a "remember
    // me"): it does not idle out, so the record needs no field of its own to say so.
    idleTimeout: init.idleExpiresAt >= init.expiresAt ? Number.POSITIVE_INFINITY : undefined,
  };
}

/**
 * The idle expiry a write at `now` gives the session: its idle timeout on from now (the manager's, unless
 * it has its own), never past its absolute expiry.
 */
export function idleExpiry(s: SessionState, now: number, idleTimeout: number): number {
  return Math.min(now + (s.idleTimeout ?? idleTimeout), s.expiresAt);
}

/**
 * The value of one attribute as the session may hand it out: a value borrowed from the store is copied
 * on its first read, and one still in JSON text is parsed then; either is kept in place of the original.
 */
export function readAttribute(s: SessionState, key: string): JsonValue | undefined {
  // Only own keys are attributes: "constructor" or "__proto__" would otherwise read Object.prototype's.
  const value = Object.hasOwn(s.attributes, key) ? s.attributes[key] : undefined;
  if (value === undefined)
    return s.encoded !== undefined && Object.hasOwn(s.encoded, key) ? decode(s, key) : undefined;
  if (!s.borrowed || typeof value !== "object" || value === null || s.owned?.has(key)) return value;
  const copy = cloneJson(value);
  setAttribute(s, key, copy);
  return copy;
}

function decode(s: SessionState, key: string): JsonValue {
  const encoded = s.encoded!;
  let value: JsonValue;
  try {
    value = JSON.parse(encoded[key]!) as JsonValue;
  } catch {
    // No cause attached: the parser's message quotes the text, which may be a secret (the CSRF key's).
    throw new StowageError("INVALID_VALUE", `stored attribute "${key}" is not valid JSON`);
  }
  setAttribute(s, key, value);
  return value;
}

export function hasAttribute(s: SessionState, key: string): boolean {
  return Object.hasOwn(s.attributes, key) || (s.encoded !== undefined && Object.hasOwn(s.encoded, key));
}

export function attributeKeys(s: SessionState): string[] {
  const keys = Object.keys(s.attributes);
  return s.encoded === undefined ? keys : keys.concat(Object.keys(s.encoded));
}

/**
 * Puts a value of the session's own under `key`, in place of a borrowed or still-encoded one. Only
 * objects need marking as owned: a primitive is never copied on read.
 */
export function setAttribute(s: SessionState, key: string, value: JsonValue): void {
  if (s.encoded !== undefined) delete s.encoded[key];
  setOwn(s.attributes, key, value);
  if (s.borrowed && typeof value === "object" && value !== null) {
    s.owned ??= new Set();
    s.owned.add(key);
  }
}

/** Keeps a never-stored session's value as its JSON text (see `Session#write`), in place of any earlier one. */
export function setEncoded(s: SessionState, key: string, json: string): void {
  delete s.attributes[key];
  s.encoded ??= {};
  setOwn(s.encoded, key, json);
}

export function pendingOf(s: SessionState): Map<string, JsonValue | typeof UNSET> {
  if (s.pending === undefined) s.pending = new Map();
  return s.pending;
}

/** Gives the session a whole attribute bag of its own (after a rename read it back from the store). */
export function adoptAttributes(s: SessionState, attributes: Attributes): void {
  s.attributes = attributes;
  s.borrowed = false;
  s.owned = undefined;
  s.encoded = undefined;
}

/** Recomputes the size bookkeeping after the manager changed attributes behind the session's back. */
export function forgetSizes(s: SessionState): void {
  s.sizes = undefined;
  s.totalBytes = 0;
}
