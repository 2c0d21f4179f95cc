import { randomBytes } from "node:crypto";
import { isStowageError } from "../core/errors.js";
import { OptionChecker } from "../core/options.js";
import {
  type Attributes,
  expiryOf,
  type JsonValue,
  type MetaPatch,
  type SessionRecord,
} from "../core/record.js";
import { MAX_LIFETIME_MS } from "../core/session.js";
import type { PeekedRecord, SessionDelta, SessionStore } from "../core/store.js";
import { type MemoryStoreOptions, MemoryStore as StowageMemoryStore } from "../stores/memory/index.js";
import type { CookieData } from "./cookie.js";
import { grantOf, STORED, type StoredSession } from "./grants.js";
import { defineStored, diff, type Snapshot, Stored } from "./properties.js";
import { type GetCallback, Session, type SessionCallback, type SessionData, Store } from "./session.js";

/** Options for `StowageStore`. */
export interface StowageStoreOptions {
  /** How long a session with a browser-session cookie (no `maxAge`) lives after its last request, in ms. @default 86_400_000 (one day) */
  ttl?: number;
}

/**
 * express-session's store interface over a stowage store (memory, SQLite, Redis, PostgreSQL). The
 * middleware of stowage/express-session wraps a stowage store in one on its own. Properties are stored as
 * separate attributes, and a save by the middleware writes only those that changed since the request read
 * them (parallel requests that change different properties keep both); tokens are checked against the
 * hash the record keeps; `passport.user` is the record's signed-in user, so `listForUser` and
 * `endAllForUser` of a manager on the same store see it. Every session also ends 400 days after it began.
 */
export class StowageStore extends Store {
  /** The stowage store the sessions are in. */
  readonly store: SessionStore;
  readonly #ttl: number;

  constructor(store: SessionStore, options: StowageStoreOptions = {}) {
    super();
    const check = new OptionChecker("StowageStore", options, ["ttl"]);
    this.#ttl = check.ms("ttl", 86_400_000);
    this.store = store;
  }

  /** Reads a session; an unknown, expired or renamed id is none. */
  override get(sid: string, callback: GetCallback): void {
    const store = this.store;
    if (store.peekNow !== undefined) {
      let record: PeekedRecord | undefined;
      try {
        record = store.peekNow(sid);
      } catch (error) {
        callback(error);
        return;
      }
      callback(undefined, this.#data(record));
      return;
    }
    (store.peek ?? store.get).call(store, sid).then(
      (record) => callback(undefined, this.#data(record)),
      (error: unknown) => callback(error),
    );
  }

  /**
   * Writes a session. From the middleware (a `Session` whose request read or made it), only the properties
   * that changed are written; from anywhere else, the whole session. A session ended meanwhile (destroyed
   * by a parallel request, or expired) stays ended.
   */
  override set(sid: string, session: SessionData, callback: SessionCallback = noop): void {
    let write: number | Promise<unknown>;
    let now: Snapshot;
    const grant = grantOf((session as { req?: object }).req, sid);
    try {
      const idleExpiresAt = this.#expiry(session.cookie);
      const changes = diff(session, grant?.stored ?? new Map(), "cookie");
      now = changes.now;
      const before = grant?.stored?.get("cookie");
      if (before !== undefined && cookieMatches(session.cookie, before)) now.set("cookie", before);
      else {
        const cookie = cookieStored(session);
        if (cookie !== undefined && before !== undefined && cookie.text === before.text)
          now.set("cookie", before);
        else if (cookie !== undefined) {
          now.set("cookie", cookie);
          changes.set.set("cookie", cookie);
        }
      }
      if (grant?.stored !== undefined) {
        write = this.#commit(sid, delta(changes.set, changes.unset, idleExpiresAt));
      } else if (grant !== undefined) {
        write = this.store.insert(this.#record(sid, grant.verifier, now, idleExpiresAt));
      } else {
        write = this.#replace(sid, now, idleExpiresAt);
      }
    } catch (error) {
      if (isEnded(error)) callback();
      else callback(error);
      return;
    }
    const done = () => {
      if (grant !== undefined) grant.stored = now;
      callback();
    };
    if (typeof write === "number") {
      done();
      return;
    }
    write.then(done, (error: unknown) => (isEnded(error) ? callback() : callback(error)));
  }

  /** Moves a session's expiry to its cookie's, without writing it. */
  override touch(sid: string, session: SessionData, callback: SessionCallback = noop): void {
    const store = this.store;
    let idleExpiresAt: number;
    try {
      idleExpiresAt = this.#expiry(session.cookie);
      if (store.touchNow !== undefined) {
        store.touchNow(sid, idleExpiresAt);
        callback();
        return;
      }
    } catch (error) {
      callback(error);
      return;
    }
    store.touch(sid, idleExpiresAt).then(
      () => callback(),
      (error: unknown) => callback(error),
    );
  }

  /** Removes a session. */
  override destroy(sid: string, callback: SessionCallback = noop): void {
    this.store.delete(sid).then(
      () => callback(),
      (error: unknown) => callback(error),
    );
  }

  /** Every live session, by sid. */
  override all(callback: (error: unknown, sessions?: Record<string, SessionData> | null) => void): void {
    this.#scan((record, out: Record<string, SessionData>) => {
      const data = this.#data(record);
      if (data !== undefined) out[record.id] = data;
    }, {}).then(
      (out) => callback(undefined, out),
      (error: unknown) => callback(error),
    );
  }

  /** How many live sessions there are. */
  override length(callback: (error: unknown, length?: number) => void): void {
    const now = Date.now();
    this.#scan(
      (record, count: { n: number }) => {
        if (expiryOf(record) > now) count.n++;
      },
      { n: 0 },
    ).then(
      (count) => callback(undefined, count.n),
      (error: unknown) => callback(error),
    );
  }

  /** Removes every session. */
  override clear(callback: SessionCallback = noop): void {
    const ids: string[] = [];
    this.#scan((record) => ids.push(record.id), undefined)
      .then(() => Promise.all(ids.map((id) => this.store.delete(id))))
      .then(
        () => callback(),
        (error: unknown) => callback(error),
      );
  }

  /** Closes the stowage store. */
  close(): Promise<void> {
    return this.store.close();
  }

  async #scan<T>(each: (record: SessionRecord, into: T) => void, into: T): Promise<T> {
    for await (const page of this.store.scan()) for (const record of page) each(record, into);
    return into;
  }

  #data(record: PeekedRecord | undefined): SessionData | undefined {
    if (record === undefined || record.via !== undefined || expiryOf(record) <= Date.now()) return undefined;
    const snapshot: Snapshot = new Map();
    // Made with the prototype of a Session, so that the Session made of it can be this very object.
    const data = Object.create(Session.prototype) as Record<string, unknown>;
    const encoded = record.encoded;
    if (encoded !== undefined) {
      for (const key of Object.keys(encoded)) snapshot.set(key, new Stored(undefined, encoded[key]));
    }
    // Values may be the store's own, which it never changes in place: an object is parsed from its text
    // into a copy only when the application reads it.
    const attributes = record.attributes;
    for (const key of Object.keys(attributes)) snapshot.set(key, new Stored(attributes[key]));
    for (const [key, stored] of snapshot) if (key !== "cookie") defineStored(data, key, stored);
    const storedCookie = snapshot.get("cookie");
    if (storedCookie !== undefined) {
      // A cookie's settings are flat: a lent one is copied field by field rather than through JSON.
      const lent = storedCookie.value;
      const cookie = (isFlat(lent) ? { ...lent } : JSON.parse(storedCookie.text)) as Record<
        string,
        unknown
      > | null;
      if (cookie !== null && typeof cookie === "object" && !("expires" in cookie)) {
        cookie.expires = new Date(record.idleExpiresAt);
      }
      data.cookie = cookie;
    }
    const stored: StoredSession = { verifier: record.verifier, snapshot, fresh: data };
    Object.defineProperty(data, STORED, { value: stored });
    return data as SessionData;
  }

  #expiry(cookie: SessionData["cookie"] | undefined): number {
    const expires = cookie?.expires;
    const now = Date.now();
    const at = expires === null || expires === undefined ? Number.NaN : new Date(expires).getTime();
    // A cookie without a valid expiry lives `ttl` past its last request (an invalid date also fails the
    // Set-Cookie, which reports it).
    return Math.min(Number.isFinite(at) ? at : now + this.#ttl, now + MAX_LIFETIME_MS);
  }

  #commit(sid: string, change: SessionDelta): number | Promise<number> {
    const store = this.store;
    return store.commitNow !== undefined ? store.commitNow(sid, change) : store.commit(sid, change);
  }

  #record(sid: string, verifier: string, now: Snapshot, idleExpiresAt: number): SessionRecord {
    const at = Date.now();
    const attributes: Attributes = {};
    for (const [key, stored] of now) attributes[key] = storedValue(stored);
    const record: SessionRecord = {
      id: sid,
      verifier,
      version: 1,
      createdAt: at,
      rotatedAt: at,
      expiresAt: at + MAX_LIFETIME_MS,
      idleExpiresAt,
      level: 0,
      loginType: "unspecified",
      attributes,
    };
    const user = userOf(now);
    if (user !== undefined) record.userId = user;
    return record;
  }

  async #replace(sid: string, now: Snapshot, idleExpiresAt: number) {
    const existing = await this.store.get(sid);
    if (existing === undefined || existing.via !== undefined) {
      // Written from outside a request: no client holds a token for it, so its verifier matches none.
      const verifier = randomBytes(32).toString("base64url");
      return this.store.insert(this.#record(sid, verifier, now, idleExpiresAt));
    }
    const unset = Object.keys(existing.attributes).filter((key) => !now.has(key));
    return this.#commit(sid, delta(now, unset, idleExpiresAt, true));
  }
}

/**
 * express-session's MemoryStore, as stowage/express-session exports it: a `StowageStore` over stowage's
 * own MemoryStore (expiring on its own, bounded by `maxEntries`), for development and tests.
 */
export class MemoryStore extends StowageStore {
  constructor(options: MemoryStoreOptions & StowageStoreOptions = {}) {
    const { ttl, ...memory } = options;
    super(new StowageMemoryStore(memory), ttl === undefined ? {} : { ttl });
  }
}

/** The session's cookie as stored: its settings, without an expiry the record keeps. */
function cookieStored(session: SessionData): Stored | undefined {
  const cookie = session.cookie as (Partial<CookieData> & { toJSON?: () => CookieData }) | undefined;
  if (cookie === undefined || cookie === null) return undefined;
  const data = { ...(typeof cookie.toJSON === "function" ? cookie.toJSON() : cookie) } as Record<
    string,
    unknown
  >;
  // A dated cookie's expiry is the record's idle expiry, moved by every save and touch without rewriting
  // the cookie; only a browser-session cookie keeps `expires: null` here.
  if (data.expires !== null) delete data.expires;
  for (const key of Object.keys(data)) if (data[key] === undefined) delete data[key];
  // Made here and shared with no one, so it may stand as the value.
  return new Stored(data);
}

/** An object whose fields are all primitives (as a cookie's settings are). */
function isFlat(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return false;
  for (const key of Object.keys(value)) {
    const field = (value as Record<string, unknown>)[key];
    if (field !== null && typeof field === "object") return false;
  }
  return true;
}

/** The fields of a cookie's stored settings (`expires` only as null, for a browser-session cookie). */
const COOKIE_FIELDS = [
  "originalMaxAge",
  "partitioned",
  "priority",
  "secure",
  "httpOnly",
  "domain",
  "path",
  "sameSite",
] as const;

/**
 * Whether a session's cookie has the settings `stored` holds, compared field by field with nothing
 * built: the usual answer at every save (a cookie's settings rarely change). False also when `stored`
 * is only text (a store that keeps JSON), which the caller then compares as text.
 */
function cookieMatches(cookie: SessionData["cookie"] | undefined, stored: Stored): boolean {
  const was = stored.value;
  if (cookie === undefined || cookie === null || !isFlat(was)) return false;
  const now = cookie as unknown as Record<string, unknown>;
  let fields = 0;
  for (const field of COOKIE_FIELDS) {
    const value = now[field];
    if (value === undefined) continue;
    if (value !== was[field]) return false;
    fields++;
  }
  // A browser-session cookie is stored with `expires: null`, a dated one without it.
  if ((now.expires === null) !== (was.expires === null)) return false;
  if (now.expires === null) fields++;
  let storedFields = 0;
  for (const key in was) if (was[key] !== undefined) storedFields++;
  return fields === storedFields;
}

/** A store delta: the properties to set and remove, the new expiry and, when `passport` changed, the new user. */
function delta(set: Snapshot, unset: string[], idleExpiresAt: number, whole = false): SessionDelta {
  const meta: MetaPatch = { idleExpiresAt };
  if (whole || set.has("passport") || unset.includes("passport")) meta.userId = userOf(set) ?? null;
  const change: SessionDelta = { meta };
  if (set.size > 0) {
    const values: Attributes = {};
    for (const [key, stored] of set) values[key] = storedValue(stored);
    change.set = values;
  }
  if (unset.length > 0) change.unset = unset;
  return change;
}

/** The value to store for a property: a primitive as it is, an object read back from its JSON text. */
function storedValue(stored: Stored): JsonValue {
  const value = stored.value;
  if (value !== undefined && (value === null || typeof value !== "object")) return value as JsonValue;
  return JSON.parse(stored.text) as JsonValue;
}

/** passport's signed-in user (`passport.user`), when it is a string or a number. */
function userOf(properties: Snapshot): string | undefined {
  const passport = properties.get("passport");
  if (passport === undefined) return undefined;
  const user = (JSON.parse(passport.text) as { user?: unknown } | null)?.user;
  return typeof user === "string" || typeof user === "number" ? String(user) : undefined;
}

function isEnded(error: unknown): boolean {
  return isStowageError(error) && error.code === "SESSION_ENDED";
}

function noop(): void {}
