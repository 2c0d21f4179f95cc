import { randomBytes } from "node:crypto";
import { StowageError } from "./errors.js";
import {
  attributeBytes as byteSize,
  checkStorableText,
  cloneJson,
  jsonText,
  serializeJson,
  setOwn,
  textBytes,
} from "./json.js";
import type { KeyRing } from "./keyring.js";
import type { Attributes, JsonValue, LoginType, MetaPatch, SessionRecord } from "./record.js";
import { equalText, type IssuedToken, issueToken } from "./tokens.js";

/** Attribute key that holds the CSRF secret; hidden from `get`/`keys` and refused at `set`. */
export const CSRF_KEY = "$stowage.csrf";

/** Options for `Session.login`. */
export interface LoginOptions {
  /** How the user signed in. @default "human" */
  type?: LoginType;
  /** Permission level granted, 0 to 255. @default 100 (USER) */
  level?: number;
}

/** Options for `Session.acquire`. */
export interface AcquireOptions {
  /** How long the lease lasts unless released. @default 10000 */
  leaseMs?: number;
  /** How long to wait for a busy lease before LOCK_TIMEOUT. @default 5000 */
  waitMs?: number;
}

/** A held lease on a session: release it, or let `await using` do it. */
export interface SessionLease extends AsyncDisposable {
  /** Strictly increasing per session; pass it along to fence writes elsewhere. */
  readonly fence: number;
  /** Frees the lease; safe to call twice. */
  release(): Promise<void>;
}

/** Plaintext channel keys, as the connection layer hands them to a session. */
export interface ChannelKeys {
  /** Cipher suite name. */
  algorithm: string;
  /** The channel secret in clear. */
  secret: Uint8Array;
}

/** Why the id is being regenerated at the next commit. */
export type RegenerateReason = "login" | "logout" | "rotation" | "explicit";

/** What the manager needs from a session; not part of the public API. */
export interface SessionHost {
  readonly maxAttributesBytes: number;
  readonly keys: KeyRing | undefined;
  now(): number;
  commit(s: SessionState): Promise<boolean>;
  update(s: SessionState, key: string, fn: (value: JsonValue | undefined) => unknown): Promise<JsonValue>;
  acquire(s: SessionState, options: AcquireOptions): Promise<SessionLease>;
}

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
}

/** Marks a pending removal in `SessionState.pending`. */
export const UNSET: unique symbol = Symbol("stowage.unset");

/** Symbol under which a session exposes its state to the manager. */
export const state: unique symbol = Symbol("stowage.session");

/**
 * The live session a request or connection holds. Reads are synchronous; writes are collected as a
 * per-key delta and written by `save()` (adapters call it for you), except `update()`, which is atomic
 * against the store at once.
 */
export class Session<A extends object = Attributes> {
  readonly [state]: SessionState;
  readonly #host: SessionHost;

  /** @internal Created by the manager; use `sessions.create()` or `sessions.load()`. */
  constructor(host: SessionHost, init: SessionState) {
    this.#host = host;
    this[state] = init;
  }

  /** Session id (the public half of the token). */
  get id(): string {
    return this[state].id;
  }
  /** The `id.secret` token to give to the client. Never log it. */
  get token(): string {
    return this[state].token;
  }
  /** The id this session had before it was regenerated in the current commit, if it was. */
  get oldId(): string | undefined {
    const s = this[state];
    return s.oldIdAt !== undefined && s.oldIdAt >= s.commits - 1 ? s.oldId : undefined;
  }
  /** True for a session created in the current commit. */
  get isNew(): boolean {
    const s = this[state];
    return s.newAt !== undefined && s.newAt >= s.commits - 1;
  }
  /** True once `end()` was called. */
  get isEnded(): boolean {
    return this[state].ended;
  }
  /** True when `login()` happened in the current commit. */
  get isJustLoggedIn(): boolean {
    const s = this[state];
    return s.loginAt !== undefined && s.loginAt >= s.commits - 1;
  }
  /** Signed-in user, if any. */
  get userId(): string | undefined {
    return this[state].userId;
  }
  /** Permission level, 0 to 255. */
  get level(): number {
    return this[state].level;
  }
  /** Preferred language tag, if set. */
  get language(): string | undefined {
    return this[state].language;
  }
  /** How the user last signed in. */
  get lastLoginType(): LoginType {
    return this[state].loginType;
  }
  /** When the user last signed in. */
  get lastLoginAt(): number | undefined {
    return this[state].lastLoginAt;
  }
  /** When the session was created (ms since the epoch). */
  get createdAt(): number {
    return this[state].createdAt;
  }
  /** When the session expires at the latest: the earlier of absolute and idle expiry. */
  get expiresAt(): number {
    const s = this[state];
    return Math.min(s.expiresAt, s.idleExpiresAt);
  }

  /**
   * What the client should hold once this session is committed: its token and the absolute expiry that a
   * cookie's lifetime follows, or undefined when the client should drop its token (the session ended,
   * or it holds nothing worth storing, as after `logout()`).
   */
  clientToken(): { token: string; expiresAt: number } | undefined {
    const s = this[state];
    if (s.ended || (s.storedId === undefined && !s.dirty)) return undefined;
    return { token: s.token, expiresAt: s.expiresAt };
  }

  /** The value of one attribute. The returned value is the session's own: change it through `set`. */
  get<K extends keyof A & string>(key: K): A[K] | undefined {
    if (key === CSRF_KEY) return undefined;
    return readAttribute(this[state], key) as A[K] | undefined;
  }

  /** True when the attribute exists. */
  has(key: keyof A & string): boolean {
    return key !== CSRF_KEY && hasAttribute(this[state], key);
  }

  /** Attribute names. */
  keys(): (keyof A & string)[] {
    return attributeKeys(this[state]).filter((k) => k !== CSRF_KEY) as (keyof A & string)[];
  }

  /** Sets one attribute; INVALID_VALUE for a value that is not JSON, ATTRIBUTES_TOO_LARGE past the limit. */
  set<K extends keyof A & string>(key: K, value: A[K]): this {
    if (key === CSRF_KEY) throw new StowageError("INVALID_VALUE", `attribute key "${CSRF_KEY}" is reserved`);
    this.#write(key, value);
    return this;
  }

  /** Removes one attribute. */
  delete(key: keyof A & string): this {
    if (key !== CSRF_KEY) this.#drop(key);
    return this;
  }

  #drop(key: string): void {
    const s = this.#writable();
    if (!hasAttribute(s, key)) return;
    // Removing cannot exceed the limit: keep the bookkeeping only if it was already made.
    if (s.sizes) {
      s.totalBytes -= s.sizes.get(key) ?? 0;
      s.sizes.delete(key);
    }
    delete s.attributes[key];
    if (s.encoded !== undefined) delete s.encoded[key];
    pendingOf(s).set(key, UNSET);
  }

  /**
   * Atomic read-modify-write of one attribute against the store: `fn` gets the stored value and returns
   * the new one; retried on a version conflict, so parallel updates never lose each other's increments.
   */
  async update<K extends keyof A & string>(key: K, fn: (current: A[K] | undefined) => A[K]): Promise<A[K]> {
    if (key === CSRF_KEY) throw new StowageError("INVALID_VALUE", `attribute key "${CSRF_KEY}" is reserved`);
    checkKey(key);
    const s = this.#writable();
    if (s.storedId === undefined) {
      const next = fn(this.get(key));
      this.#write(key, next);
      return next;
    }
    const next = await this.#host.update(s, key, fn as (v: JsonValue | undefined) => unknown);
    return next as A[K];
  }

  /** Signs the user in: sets user, level and login type, and regenerates the id with no grace. */
  login(userId: string, options: LoginOptions = {}): this {
    if (typeof userId !== "string" || userId.length === 0 || userId.length > 512) {
      throw new StowageError("INVALID_VALUE", "userId must be a non-empty string of at most 512 characters");
    }
    checkStorableText(userId, "userId");
    const level = options.level ?? 100;
    checkLevel(level);
    const s = this.#writable();
    const now = this.#host.now();
    s.userId = userId;
    s.level = level;
    s.loginType = options.type ?? "human";
    s.lastLoginAt = now;
    Object.assign(s.meta, { userId, level, loginType: s.loginType, lastLoginAt: now });
    s.loginAt = s.commits;
    s.dirty = true;
    // A privilege change gets a fresh CSRF secret too, so a token seen before login is worthless after.
    if (hasAttribute(s, CSRF_KEY)) this.#drop(CSRF_KEY);
    if (s.storedId !== undefined) renew(s, "login", 0);
    return this;
  }

  /**
   * Signs the user out: the stored session is removed at commit and this object starts blank under a
   * new id (keeping only the language), which is written only if something is stored in it again.
   */
  logout(): this {
    const s = this.#writable();
    if (s.storedId !== undefined) s.dropId = s.storedId;
    const now = this.#host.now();
    s.oldId = s.id;
    s.oldIdAt = s.commits;
    adopt(s, issueToken());
    Object.assign(s, {
      storedId: undefined,
      dirty: false,
      version: 0,
      createdAt: now,
      rotatedAt: now,
      userId: undefined,
      level: 0,
      loginType: "unspecified",
      lastLoginAt: undefined,
      channel: undefined,
      attributes: {},
      borrowed: false,
      owned: undefined,
      encoded: undefined,
      pending: undefined,
      meta: {},
      regenerate: undefined,
      sizes: undefined,
      totalBytes: 0,
      newAt: s.commits,
      loginAt: undefined,
    } satisfies Partial<SessionState>);
    return this;
  }

  /** Issues a new id and secret now (written at commit); the old token keeps working for `graceMs`. */
  regenerateId(options: { graceMs?: number } = {}): this {
    const s = this.#writable();
    if (s.storedId !== undefined) renew(s, "explicit", options.graceMs ?? 0);
    return this;
  }

  /** Sets the preferred language tag. */
  setLanguage(language: string | undefined): this {
    if (language !== undefined && (typeof language !== "string" || language.length > 64)) {
      throw new StowageError("INVALID_VALUE", "language must be a string of at most 64 characters");
    }
    if (language !== undefined) checkStorableText(language, "language");
    const s = this.#writable();
    s.language = language;
    s.meta.language = language ?? null;
    s.dirty = true;
    return this;
  }

  /** Seals channel keys with the key ring and keeps them in the session (needs the `keys` option). */
  setChannel(keys: ChannelKeys): this {
    const ring = this.#ring();
    const s = this.#writable();
    s.channel = {
      algorithm: keys.algorithm,
      sealedSecret: ring.seal(keys.secret, `channel:${keys.algorithm}`),
    };
    s.meta.channel = s.channel;
    s.dirty = true;
    return this;
  }

  /** The channel keys in clear, or undefined when there are none or they cannot be opened. */
  getChannel(): ChannelKeys | undefined {
    const channel = this[state].channel;
    if (!channel) return undefined;
    const secret = this.#ring().unseal(channel.sealedSecret, `channel:${channel.algorithm}`);
    return secret ? { algorithm: channel.algorithm, secret } : undefined;
  }

  /** Ends the session: it is removed from the store at commit and its token stops working. */
  end(): void {
    this[state].ended = true;
  }

  /** Commits pending changes now; resolves true if anything was written. */
  save(): Promise<boolean> {
    this[state].dirty = true;
    return this.#host.commit(this[state]);
  }

  /** Takes an exclusive lease on this session across processes; LOCK_TIMEOUT if it stays busy. */
  acquire(options: AcquireOptions = {}): Promise<SessionLease> {
    return this.#host.acquire(this[state], options);
  }

  /** Releases the lease taken by `acquire`, if any. */
  async release(): Promise<void> {
    await this[state].lease?.release();
  }

  /** A per-session CSRF token for forms; creating it stores a random secret in the session. */
  get csrfToken(): string {
    const existing = readAttribute(this[state], CSRF_KEY);
    if (typeof existing === "string") return existing;
    const created = randomBytes(32).toString("base64url");
    this.#write(CSRF_KEY, created);
    return created;
  }

  /** Constant-time check of a submitted CSRF token. */
  verifyCsrf(token: unknown): boolean {
    const expected = readAttribute(this[state], CSRF_KEY);
    return typeof token === "string" && typeof expected === "string" && equalText(token, expected);
  }

  #write(key: string, value: unknown): void {
    checkKey(key);
    const s = this.#writable();
    const json = serializeJson(value, key);
    const valueBytes = textBytes(json);
    if (s.sizes !== undefined || !this.#noLarger(key, valueBytes)) {
      const size = textBytes(key) + valueBytes + 4;
      const sizes = this.#sizes();
      const total = s.totalBytes - (sizes.get(key) ?? 0) + size;
      if (total > this.#host.maxAttributesBytes) {
        throw new StowageError(
          "ATTRIBUTES_TOO_LARGE",
          `attributes would take ${total} bytes; the limit is ${this.#host.maxAttributesBytes}`,
        );
      }
      sizes.set(key, size);
      s.totalBytes = total;
    }
    // Store a private copy so later mutation of the caller's object cannot change the session.
    const copy =
      typeof value === "object" && value !== null ? (JSON.parse(json) as JsonValue) : (value as JsonValue);
    setAttribute(s, key, copy);
    pendingOf(s).set(key, copy);
    s.dirty = true;
  }

  /**
   * True when `key` already holds a value whose JSON takes at least `valueBytes` bytes. Replacing it cannot
   * grow the session, so a loaded session's first write (typically one small counter or flag per request)
   * need not measure every attribute: that would cost a JSON.stringify of the whole bag per request.
   */
  #noLarger(key: string, valueBytes: number): boolean {
    const s = this[state];
    if (s.encoded !== undefined && Object.hasOwn(s.encoded, key))
      return textBytes(s.encoded[key]!) >= valueBytes;
    if (!Object.hasOwn(s.attributes, key)) return false;
    return textBytes(jsonText(s.attributes[key]!)) >= valueBytes;
  }

  #writable(): SessionState {
    const s = this[state];
    if (s.ended) throw new StowageError("SESSION_ENDED", "the session has ended");
    return s;
  }

  #sizes(): Map<string, number> {
    const s = this[state];
    if (s.sizes) return s.sizes;
    const sizes = new Map<string, number>();
    let total = 0;
    for (const key of Object.keys(s.attributes)) {
      const size = byteSize(key, jsonText(s.attributes[key]!));
      sizes.set(key, size);
      total += size;
    }
    if (s.encoded !== undefined) {
      for (const key of Object.keys(s.encoded)) {
        const size = byteSize(key, s.encoded[key]!);
        sizes.set(key, size);
        total += size;
      }
    }
    s.sizes = sizes;
    s.totalBytes = total;
    return sizes;
  }

  #ring(): KeyRing {
    const ring = this.#host.keys;
    if (!ring) throw new StowageError("CONFIG_INVALID", "channel keys need the `keys` option (a key ring)");
    return ring;
  }
}

/**
 * Gives the session its next id and token at once, so an adapter can set the cookie before the response
 * goes out; the commit renames the stored record to it. A second call before the commit keeps the token.
 */
export function renew(s: SessionState, reason: RegenerateReason, graceMs: number): void {
  if (s.regenerate) {
    s.regenerate = reason === "login" ? { reason, graceMs: 0 } : s.regenerate;
    return;
  }
  s.oldId = s.id;
  s.oldIdAt = s.commits;
  adopt(s, issueToken());
  s.regenerate = { reason, graceMs };
}

function adopt(s: SessionState, issued: IssuedToken): void {
  s.id = issued.id;
  s.token = issued.token;
  s.verifier = issued.verifier;
  s.secret = issued.token.slice(issued.id.length + 1);
}

/** What differs between a blank new session's state and a loaded one's; the rest starts the same. */
export type StateSeed = Pick<
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

/** A session's state from its seed, with nothing pending. */
export function sessionState(seed: StateSeed): SessionState {
  return {
    id: seed.id,
    token: seed.token,
    verifier: seed.verifier,
    secret: seed.secret,
    storedId: seed.storedId,
    dirty: false,
    version: seed.version,
    createdAt: seed.createdAt,
    rotatedAt: seed.rotatedAt,
    expiresAt: seed.expiresAt,
    idleExpiresAt: seed.idleExpiresAt,
    userId: seed.userId,
    level: seed.level,
    loginType: seed.loginType,
    lastLoginAt: seed.lastLoginAt,
    language: seed.language,
    channel: seed.channel,
    attributes: seed.attributes,
    borrowed: seed.borrowed,
    owned: undefined,
    encoded: seed.encoded,
    pending: undefined,
    meta: {},
    regenerate: undefined,
    dropId: undefined,
    ended: false,
    sizes: undefined,
    totalBytes: 0,
    commits: 0,
    newAt: seed.newAt,
    loginAt: undefined,
    oldId: undefined,
    oldIdAt: undefined,
    lease: undefined,
    committing: undefined,
    queued: 0,
  };
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

function hasAttribute(s: SessionState, key: string): boolean {
  return Object.hasOwn(s.attributes, key) || (s.encoded !== undefined && Object.hasOwn(s.encoded, key));
}

function attributeKeys(s: SessionState): string[] {
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

function pendingOf(s: SessionState): Map<string, JsonValue | typeof UNSET> {
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

/** Throws INVALID_VALUE unless an attribute key is storable text (see `isStorableText`). */
function checkKey(key: unknown): asserts key is string {
  if (typeof key !== "string") throw new StowageError("INVALID_VALUE", "an attribute key must be a string");
  checkStorableText(key, "an attribute key");
}

/** Throws INVALID_VALUE unless `level` is an integer from 0 to 255. */
export function checkLevel(level: unknown): asserts level is number {
  if (!Number.isInteger(level) || (level as number) < 0 || (level as number) > 255) {
    throw new StowageError("INVALID_VALUE", "level must be an integer from 0 to 255");
  }
}

/** Recomputes the size bookkeeping after the manager changed attributes behind the session's back. */
export function forgetSizes(s: SessionState): void {
  s.sizes = undefined;
  s.totalBytes = 0;
}
