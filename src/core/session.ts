import { randomBytes } from "node:crypto";
import { StowageError } from "./errors.js";
import { attributeBytes as byteSize, checkStorableText, jsonText, serializeJson, textBytes } from "./json.js";
import type { KeyRing } from "./keyring.js";
import type { AcquireOptions, SessionLease } from "./lease.js";
import type { Attributes, JsonValue, LoginType } from "./record.js";
import {
  adopt,
  attributeKeys,
  hasAttribute,
  issueNextToken,
  pendingOf,
  readAttribute,
  type SessionState,
  setAttribute,
  setEncoded,
  state,
  UNSET,
} from "./session-state.js";
import { equalText, issueToken } from "./tokens.js";

export type { AcquireOptions, SessionLease } from "./lease.js";
export type { RegenerateReason } from "./session-state.js";

/** Attribute key that holds the CSRF secret; hidden from `get`/`keys` and refused at `set`. */
export const CSRF_KEY = "$stowage.csrf";

/** Options for `Session.login`. */
export interface LoginOptions {
  /** How the user signed in. @default "human" */
  type?: LoginType;
  /** Permission level granted, 0 to 255. @default 100 (USER) */
  level?: number;
  /** A lifetime of this session's own, in ms from now, that no idleness shortens (a "remember me"); see `setLifetime`. */
  lifetime?: number;
}

/** Longest lifetime `setLifetime` gives: 400 days, what browsers keep a cookie at most. */
export const MAX_LIFETIME_MS = 400 * 86_400_000;

/** Plaintext channel keys, as the connection layer hands them to a session. */
export interface ChannelKeys {
  /** Cipher suite name. */
  algorithm: string;
  /** The channel secret in clear. */
  secret: Uint8Array;
}

/** What the manager needs from a session; not part of the public API. */
export interface SessionHost {
  readonly maxAttributesBytes: number;
  /** The manager's absolute lifetime of a session, and its idle timeout. */
  readonly ttl: number;
  readonly idleTimeout: number;
  readonly keys: KeyRing | undefined;
  now(): number;
  commit(s: SessionState): Promise<boolean>;
  update(s: SessionState, key: string, fn: (value: JsonValue | undefined) => unknown): Promise<JsonValue>;
  acquire(s: SessionState, options: AcquireOptions): Promise<SessionLease>;
}

/**
 * The live session a request or connection holds. Reads are synchronous; writes are collected as a
 * per-key delta and written by `save()` (adapters call it for you), except `update()`, which is atomic
 * against the store at once.
 */
export class Session<A extends object = Attributes> {
  /** @internal The state the manager and the commit engine work on. */
  readonly [state]: SessionState;
  readonly #host: SessionHost;

  /** Made by the manager: use `sessions.create()` or `sessions.load()`. */
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
    if (options.lifetime !== undefined) checkLifetime(options.lifetime);
    const s = this.#renamable("login");
    if (options.lifetime !== undefined) this.setLifetime(options.lifetime);
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
    if (s.storedId !== undefined) issueNextToken(s, "login", 0);
    return this;
  }

  /**
   * Gives this session a lifetime of its own: it lives `ms` from now (at most 400 days), whatever the
   * manager's `ttl`, and idleness does not end it sooner — a "remember me". The cookie's Max-Age follows
   * it. Written at the next commit; `logout()` goes back to the manager's lifetimes.
   */
  setLifetime(ms: number): this {
    checkLifetime(ms);
    const s = this.#writable();
    s.expiresAt = this.#host.now() + ms;
    s.idleExpiresAt = s.expiresAt;
    s.idleTimeout = Number.POSITIVE_INFINITY;
    s.meta.expiresAt = s.expiresAt;
    s.dirty = true;
    return this;
  }

  /**
   * Signs the user out: the stored session is removed at commit and this object starts blank under a
   * new id (keeping only the language), which is written only if something is stored in it again.
   */
  logout(): this {
    const s = this.#renamable("logout");
    if (s.storedId !== undefined) s.dropId = s.storedId;
    const now = this.#host.now();
    s.oldId = s.id;
    s.oldIdAt = s.commits;
    adopt(s, issueToken());
    if (s.idleTimeout === Number.POSITIVE_INFINITY) {
      // A lifetime of its own ends with the sign-in it came with.
      s.expiresAt = now + this.#host.ttl;
      s.idleExpiresAt = now + this.#host.idleTimeout;
      s.idleTimeout = undefined;
    }
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
    const s = this.#renamable("regenerateId");
    if (s.storedId !== undefined) issueNextToken(s, "explicit", options.graceMs ?? 0);
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
    s.dirty = true;
    if (typeof value !== "object" || value === null) {
      setAttribute(s, key, value as JsonValue);
      pendingOf(s).set(key, value as JsonValue);
      return;
    }
    if (s.storedId === undefined && s.queued === 0) {
      // Fast path (bench: creating a session): a new session keeps an object as its JSON text, which is
      // a private copy already. Its insert hands the text to the store (`insertEncoded`) and only a read
      // parses it, so a store that keeps JSON never serializes the value a second time. Nothing is
      // pending for a session never stored: the insert writes it whole. While its insert is in flight,
      // a write is pending as on a stored session, for the commit after it.
      setEncoded(s, key, json);
      return;
    }
    // Store a private copy so later mutation of the caller's object cannot change the session.
    const copy = JSON.parse(json) as JsonValue;
    setAttribute(s, key, copy);
    pendingOf(s).set(key, copy);
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

  /** The state, for a change that gives the session a new id: never a connection session's. */
  #renamable(what: string): SessionState {
    const s = this.#writable();
    if (s.generation !== undefined) {
      throw new StowageError(
        "INVALID_VALUE",
        `${what} is not for a connection session: its id stays and its credential rotates on every resume`,
      );
    }
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

function checkLifetime(ms: number): void {
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms <= 0 || ms > MAX_LIFETIME_MS) {
    throw new StowageError("INVALID_VALUE", "lifetime must be a positive number of ms, at most 400 days");
  }
}
