import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { type Clock, systemClock } from "./clock.js";
import { isStowageError, StowageError } from "./errors.js";
import { Emitter, type SessionEvents } from "./events.js";
import { attributesBytes, isStorableText, serializeJson, setOwn } from "./json.js";
import { KeyRing, type SealingKey } from "./keyring.js";
import { OptionChecker } from "./options.js";
import { type Attributes, expiryOf, type JsonValue, type LoginType, type SessionRecord } from "./record.js";
import {
  type AcquireOptions,
  adoptAttributes,
  CSRF_KEY,
  forgetSizes,
  renew,
  Session,
  type SessionHost,
  type SessionLease,
  type SessionState,
  sessionState,
  setAttribute,
  state,
  UNSET,
} from "./session.js";
import type {
  PeekedRecord,
  SessionDelta,
  SessionStore,
  StoredRecord,
  StoreEvent,
  SyncLane,
} from "./store.js";
import { type CheckedToken, issueToken, isValidId, matchesVerifier, TokenMemo } from "./tokens.js";

/** Options for `createSessions`. */
export interface SessionsOptions {
  /** Where records live. @default new MemoryStore() */
  store?: SessionStore;
  /** Absolute lifetime of a session in ms. @default 14 days */
  ttl?: number;
  /** Idle lifetime in ms: a session unused this long expires. @default 30 minutes */
  idleTimeout?: number;
  /** Minimum ms between idle-expiry refreshes of an unchanged session. @default min(idleTimeout / 10, 60 s) */
  touchAfter?: number;
  /** Routine id rotation: regenerate the id when it is older than this many ms; 0 turns it off. @default 0 */
  rotateEvery?: number;
  /** How long the old id of a routine rotation keeps resolving. @default 10000 */
  rotationGraceMs?: number;
  /** Sealing keys for channel secrets (the first one seals), or a ready KeyRing. */
  keys?: readonly SealingKey[] | KeyRing;
  /** Largest serialized size of one session's attributes, in bytes. @default 65536 */
  maxAttributesBytes?: number;
  /** Time source, for tests. @default the system clock */
  clock?: Clock;
}

/** What `create` may set up front. */
export interface CreateInit<A extends object = Attributes> {
  /** Initial attributes. */
  attributes?: Partial<A>;
  /** Preferred language tag. */
  language?: string;
}

/** A session as listed for its user (no secrets). */
export interface SessionInfo {
  /** Session id. */
  id: string;
  /** When it was created. */
  createdAt: number;
  /** When it expires at the latest. */
  expiresAt: number;
  /** Permission level. */
  level: number;
  /** How the user signed in. */
  loginType: LoginType;
  /** When the user signed in. */
  lastLoginAt?: number;
  /** Language tag. */
  language?: string;
  /** Attributes (the CSRF secret left out). */
  attributes: Attributes;
}

/** Options for `Sessions.commit` (the store's own `commit` takes `CommitOptions`). */
export interface SessionCommitOptions {
  /** Allow a due routine rotation in this commit; pass false once response headers are out. @default true */
  rotate?: boolean;
}

/** Counters since the manager was created. */
export interface SessionStats {
  created: number;
  loaded: number;
  malformed: number;
  unknown: number;
  forged: number;
  expired: number;
  ended: number;
  regenerated: number;
  conflicts: number;
}

/** The token a session had before a routine rotation, restored when a parallel rotation wins. */
interface KeptToken {
  id: string;
  token: string;
  verifier: string;
  secret: string;
  oldId: string | undefined;
  oldIdAt: number | undefined;
}

const DAY = 86_400_000;
const SESSIONS_OPTIONS = [
  "ttl",
  "idleTimeout",
  "touchAfter",
  "rotateEvery",
  "rotationGraceMs",
  "keys",
  "maxAttributesBytes",
  "clock",
] as const;
const STORE_METHODS = [
  "insert",
  "get",
  "commit",
  "rename",
  "consume",
  "delete",
  "touch",
  "listByUser",
] as const;

/** True for an object with the contract's methods (a plain JavaScript caller may pass anything). */
function isStore(store: unknown): store is SessionStore {
  return (
    typeof store === "object" &&
    store !== null &&
    STORE_METHODS.every((name) => typeof (store as Record<string, unknown>)[name] === "function")
  );
}
const MAX_UPDATE_MS = 30_000;

/** The session manager: creates, loads, commits and ends sessions on one store. */
export class Sessions<A extends object = Attributes> extends Emitter<SessionEvents> {
  /** The store behind this manager. */
  readonly store: SessionStore;
  /** Absolute lifetime in ms. */
  readonly ttl: number;
  /** Idle lifetime in ms. */
  readonly idleTimeout: number;
  readonly #touchAfter: number;
  readonly #rotateEvery: number;
  readonly #rotationGraceMs: number;
  readonly #clock: Clock;
  readonly #tokens = new TokenMemo();
  readonly #host: SessionHost;
  /** The store's `peek`, bound, when it has one: loads then copy only the values a request reads. */
  readonly #peek: ((id: string) => Promise<PeekedRecord | undefined>) | undefined;
  /** The store's synchronous lane, when it lives in this process and has one. */
  readonly #lane: SyncLane | undefined;
  readonly #origin = randomBytes(8).toString("base64url");
  readonly #stats: SessionStats = {
    created: 0,
    loaded: 0,
    malformed: 0,
    unknown: 0,
    forged: 0,
    expired: 0,
    ended: 0,
    regenerated: 0,
    conflicts: 0,
  };
  #unsubscribe: Promise<() => Promise<void>> | undefined;
  #closed = false;

  constructor(store: SessionStore, options: Omit<SessionsOptions, "store"> = {}) {
    super();
    const check = new OptionChecker("createSessions", options, SESSIONS_OPTIONS);
    if (!isStore(store)) throw check.error("store must be a session store (see docs/store-contract.md)");
    this.store = store;
    this.#peek = store.peek?.bind(store);
    this.#lane = syncLane(store);
    this.ttl = check.ms("ttl", 14 * DAY);
    this.idleTimeout = check.ms("idleTimeout", 30 * 60_000);
    if (this.idleTimeout > this.ttl) {
      throw check.error(`idleTimeout (${this.idleTimeout} ms) must not exceed ttl (${this.ttl} ms)`);
    }
    this.#touchAfter = check.ms("touchAfter", Math.min(this.idleTimeout / 10, 60_000), { zero: true });
    if (this.#touchAfter >= this.idleTimeout) {
      throw check.error(
        `touchAfter (${this.#touchAfter} ms) must be less than idleTimeout (${this.idleTimeout} ms)`,
      );
    }
    this.#rotateEvery = check.ms("rotateEvery", 0, { zero: true });
    this.#rotationGraceMs = check.ms("rotationGraceMs", 10_000, { zero: true });
    const clock = check.raw("clock") ?? systemClock;
    if (typeof (clock as Partial<Clock>).now !== "function")
      throw check.error("clock must have a now() method");
    this.#clock = clock as Clock;
    const given = check.raw("keys");
    if (given !== undefined && !(given instanceof KeyRing) && !Array.isArray(given)) {
      throw check.error("keys must be a KeyRing or an array of sealing keys");
    }
    const keys = given === undefined || given instanceof KeyRing ? given : new KeyRing(given as SealingKey[]);
    const maxAttributesBytes = check.bytes("maxAttributesBytes", 65_536);
    this.#host = {
      maxAttributesBytes,
      keys,
      now: () => this.#clock.now(),
      commit: (s) => this.#serialized(s, true),
      update: (s, key, fn) => this.#update(s, key, fn),
      acquire: (s, opts) => this.#acquire(s, opts),
    };
    this.onListen = (event) => {
      if (event === "ended" || event === "replaced") this.#subscribe();
    };
  }

  /** A new session. It is written at the first commit that finds something in it (or at `save()`). */
  create(init: CreateInit<A> = {}): Session<A> {
    const issued = issueToken();
    const now = this.#clock.now();
    const session = new Session<A>(
      this.#host,
      sessionState({
        id: issued.id,
        token: issued.token,
        verifier: issued.verifier,
        secret: issued.token.slice(issued.id.length + 1),
        storedId: undefined,
        version: 0,
        createdAt: now,
        rotatedAt: now,
        expiresAt: now + this.ttl,
        idleExpiresAt: now + this.idleTimeout,
        userId: undefined,
        level: 0,
        loginType: "unspecified",
        lastLoginAt: undefined,
        language: undefined,
        channel: undefined,
        attributes: {},
        borrowed: false,
        encoded: undefined,
        newAt: 0,
      }),
    );
    if (init.language !== undefined) session.setLanguage(init.language);
    for (const [key, value] of Object.entries(init.attributes ?? {})) {
      session.set(key as keyof A & string, value as A[keyof A & string]);
    }
    return session;
  }

  /**
   * The session a token names, or null when the token is malformed, unknown, forged, expired or ended
   * (the reason is counted in `stats()` and emitted). Store failures reject with STORE_UNAVAILABLE.
   * `connection`, an object that lives as long as the client's connection (its socket), lets a
   * keep-alive client that sends the same token again skip parsing and hashing it.
   */
  async load(token: unknown, connection?: object): Promise<Session<A> | null> {
    const checked = this.#check(token, connection);
    if (!checked) return null;
    const record = await (this.#peek ? this.#peek(checked.id) : this.store.get(checked.id));
    return this.#loaded(checked, record, this.#peek !== undefined);
  }

  /**
   * @internal `load` answered at once, when the store has a synchronous lane (an in-process store):
   * the session or null, or undefined when the store has none and `load` must be awaited. Throws what
   * `load` rejects with.
   */
  loadNow(token: unknown, connection?: object): Session<A> | null | undefined {
    const lane = this.#lane;
    if (lane === undefined) return undefined;
    const checked = this.#check(token, connection);
    if (!checked) return null;
    const now = this.#clock.now();
    return this.#loaded(checked, lane.peekNow(checked.id, this.#wallNow(now)), true, now);
  }

  /** `now` for a store's synchronous lane: given only when the manager's clock is the wall clock too. */
  #wallNow(now: number): number | undefined {
    return this.#clock === systemClock ? now : undefined;
  }

  #check(token: unknown, connection: object | undefined): CheckedToken | null {
    const checked = this.#tokens.check(token, connection);
    if (!checked) this.#stats.malformed++;
    return checked;
  }

  /** The session a fetched record makes for this token, or null (counted and emitted) when it may not. */
  #loaded(
    checked: CheckedToken,
    record: PeekedRecord | undefined,
    borrowed: boolean,
    now?: number,
  ): Session<A> | null {
    if (!record) {
      this.#stats.unknown++;
      return null;
    }
    if (!matchesVerifier(checked, record.via ? record.via.verifier : record.verifier)) {
      this.#stats.forged++;
      this.emit("forged", { id: checked.id });
      return null;
    }
    now ??= this.#clock.now();
    if (record.via && record.via.until <= now) {
      this.#stats.unknown++;
      return null;
    }
    if (expiryOf(record) <= now) {
      this.#stats.expired++;
      this.emit("expired", { id: record.id });
      return null;
    }
    this.#stats.loaded++;
    // The store's own string for the id (equal, as the lookup found it): a remembered token's next lookup
    // then matches the stored key by identity instead of comparing the text.
    if (!record.via) checked.id = record.id;
    if (this.listens("loaded")) this.emit("loaded", { id: record.id });
    return new Session<A>(this.#host, fromRecord(record, checked.token, checked.secret, borrowed));
  }

  /**
   * Writes what changed in the session: nothing when nothing changed, the per-key delta otherwise,
   * an insert for a new session that holds something, a rename when the id is regenerated, a delete
   * when it ended. Resolves true if the store was written.
   */
  commit(session: Session<A>, options: SessionCommitOptions = {}): Promise<boolean> {
    return this.#serialized(session[state], options.rotate ?? true);
  }

  /**
   * @internal `commit` done at once, when the store has a synchronous lane and the commit is the usual
   * kind (a delta, an idle refresh or nothing, on a stored session, with no other commit in flight):
   * true if the store was written. Undefined when it must go through `commit` instead. Throws what
   * `commit` rejects with.
   */
  commitNow(session: Session<A>, options: SessionCommitOptions = {}): boolean | undefined {
    const lane = this.#lane;
    const s = session[state];
    if (lane === undefined || s.queued > 0) return undefined;
    const plan = this.#plan(s, options.rotate ?? true);
    if (typeof plan === "string") return undefined;
    if (plan.delta) {
      let version: number;
      try {
        version = lane.commitNow(s.storedId!, plan.delta, undefined, this.#wallNow(plan.now));
      } catch (error) {
        // The id may have become a rotation alias: the async path follows it.
        if (isStowageError(error, "SESSION_ENDED")) return undefined;
        throw error;
      }
      deltaWritten(s, plan.delta, plan.idle, version);
    } else if (plan.touch) {
      lane.touchNow(s.storedId!, plan.idle, this.#wallNow(plan.now));
      s.idleExpiresAt = plan.idle;
    }
    s.commits++;
    return plan.delta !== undefined || plan.touch;
  }

  /**
   * What the usual commit of a stored session writes: its pending delta (with the idle refresh), or the
   * idle refresh alone when it is due, or nothing. "lifecycle" when the session ended, logged out, is new
   * or gets a new id; "rotate" when routine rotation is due.
   */
  #plan(s: SessionState, rotate: boolean): CommitPlan | "lifecycle" | "rotate" {
    if (s.ended || s.dropId !== undefined || s.storedId === undefined || s.regenerate) return "lifecycle";
    const now = this.#clock.now();
    if (rotate && this.#rotateEvery > 0 && now - s.rotatedAt >= this.#rotateEvery) return "rotate";
    const idle = now + this.idleTimeout;
    const delta = pendingDelta(s, idle);
    const touch = delta === undefined && now - (s.idleExpiresAt - this.idleTimeout) >= this.#touchAfter;
    return { delta, touch, idle, now };
  }

  /** Runs commits of one session one after another; the usual lone commit starts at once. */
  #serialized(s: SessionState, rotate: boolean): Promise<boolean> {
    const previous = s.committing;
    const next = () => this.#commit(s, rotate);
    s.queued++;
    const run = previous === undefined ? next() : previous.then(next, next);
    s.committing = run;
    return run;
  }

  /** Live sessions of one user, oldest first. */
  async listForUser(userId: string): Promise<SessionInfo[]> {
    // No session can be signed in as text `login` refuses; a store might match it to a mangled spelling.
    if (!isUserId(userId)) return [];
    const now = this.#clock.now();
    const records = await this.store.listByUser(userId);
    return records
      .filter((r) => expiryOf(r) > now)
      .sort((a, b) => a.createdAt - b.createdAt)
      .map((r) => {
        const { [CSRF_KEY]: _csrf, ...attributes } = r.attributes;
        return {
          id: r.id,
          createdAt: r.createdAt,
          expiresAt: expiryOf(r),
          level: r.level,
          loginType: r.loginType,
          ...(r.lastLoginAt === undefined ? {} : { lastLoginAt: r.lastLoginAt }),
          ...(r.language === undefined ? {} : { language: r.language }),
          attributes,
        };
      });
  }

  /** Ends every session of a user (except `except`, an id); resolves how many ended. */
  async endAllForUser(userId: string, options: { except?: string } = {}): Promise<number> {
    if (!isUserId(userId)) return 0;
    const ids = await this.store.deleteByUser(
      userId,
      options.except === undefined ? {} : { exceptId: options.except },
    );
    await Promise.all(ids.map((id) => this.#ended(id, userId)));
    return ids.length;
  }

  /** Ends one session by id; resolves true if it existed. */
  async end(id: string): Promise<boolean> {
    // Only ids the manager issues can exist: anything else is no session, without asking the store.
    if (!isValidId(id)) return false;
    const removed = await this.store.delete(id);
    if (removed) await this.#ended(id, undefined);
    return removed;
  }

  /** Removes expired records from a store without native expiry; resolves how many. */
  sweep(): Promise<number> {
    return this.store.sweep(this.#clock.now());
  }

  /** A copy of the counters. */
  stats(): SessionStats {
    return { ...this.#stats };
  }

  /** Stops listening for store events and closes the store. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const unsubscribe = this.#unsubscribe;
    this.#unsubscribe = undefined;
    if (unsubscribe) await (await unsubscribe.catch(() => async () => {}))();
    await this.store.close();
  }

  async #commit(s: SessionState, rotate: boolean): Promise<boolean> {
    try {
      const wrote = await this.#write(s, rotate);
      s.commits++;
      return wrote;
    } finally {
      // The last commit in line empties the queue, so the next one starts at once instead of a turn later.
      if (--s.queued === 0) s.committing = undefined;
    }
  }

  /**
   * Writes what the session needs. The usual commit (a delta, an idle refresh or nothing, on a stored
   * session) goes straight to the store without an async frame of its own; the rest takes #writeLifecycle.
   */
  #write(s: SessionState, rotate: boolean): Promise<boolean> {
    const plan = this.#plan(s, rotate);
    if (plan === "lifecycle") return this.#writeLifecycle(s, rotate);
    if (plan === "rotate") return this.#rotate(s);
    const { delta, idle } = plan;
    if (delta) {
      return this.#retarget(
        s,
        (id) => this.store.commit(id, delta),
        (version) => deltaWritten(s, delta, idle, version),
      );
    }
    if (plan.touch) {
      return this.#retarget(
        s,
        (id) => this.store.touch(id, idle),
        () => {
          s.idleExpiresAt = idle;
          return true;
        },
      );
    }
    return NOTHING_WRITTEN;
  }

  /** Ending, logging out, inserting and regenerating. */
  async #writeLifecycle(s: SessionState, rotate: boolean): Promise<boolean> {
    if (s.ended) {
      const stored = s.storedId;
      if (stored === undefined) return false;
      const removed = await this.store.delete(stored);
      s.storedId = undefined;
      if (removed) await this.#ended(stored, s.userId);
      return removed;
    }
    let wrote = false;
    if (s.dropId !== undefined) {
      const dropped = s.dropId;
      if (await this.store.delete(dropped)) await this.#ended(dropped, undefined);
      s.dropId = undefined;
      this.#stats.regenerated++;
      this.emit("regenerated", { oldId: dropped, id: s.id, reason: "logout" });
      wrote = true;
    }
    if (s.storedId === undefined) return (await this.#insert(s)) || wrote;
    if (s.regenerate) return this.#rename(s);
    return (await this.#write(s, rotate)) || wrote;
  }

  async #insert(s: SessionState): Promise<boolean> {
    if (!s.dirty) return false;
    await this.store.insert(toRecord(s));
    s.storedId = s.id;
    s.version = 1;
    clearPending(s);
    this.#stats.created++;
    this.emit("created", { id: s.id, ...(s.userId === undefined ? {} : { userId: s.userId }) });
    return true;
  }

  /** Routine rotation: a new token, with the old one kept as an alias for in-flight requests. */
  async #rotate(s: SessionState): Promise<boolean> {
    const fresh = await this.store.get(s.storedId!);
    if (!fresh) throw new StowageError("SESSION_ENDED", "the session has ended");
    if (this.#rotatedElsewhere(fresh)) return this.#keepToken(s, fresh);
    const { id, token, verifier, secret, oldId, oldIdAt } = s;
    const previous: KeptToken = { id, token, verifier, secret, oldId, oldIdAt };
    renew(s, "rotation", this.#rotationGraceMs);
    return this.#rename(s, fresh, previous);
  }

  /** True when a parallel request has rotated this record already (it came through an alias, or is young). */
  #rotatedElsewhere(fresh: StoredRecord): boolean {
    return fresh.via !== undefined || this.#clock.now() - fresh.rotatedAt < this.#rotateEvery;
  }

  /**
   * A parallel request rotated first: this request keeps its token (now an alias) and writes to the new
   * id, so only one new token is ever handed out per rotation.
   */
  #keepToken(s: SessionState, fresh: StoredRecord, previous?: KeptToken): Promise<boolean> {
    if (previous) {
      Object.assign(s, previous);
      s.regenerate = undefined;
    }
    s.storedId = fresh.id;
    s.rotatedAt = fresh.rotatedAt;
    return this.#write(s, false);
  }

  /**
   * Moves the stored record to the session's new id, carrying the pending delta; retried on conflict.
   * If the old id became an alias meanwhile (a parallel request rotated), a login or explicit regeneration
   * renames the record it now points to, and a routine rotation (`previous` set) is dropped in favour of
   * the parallel one.
   */
  async #rename(s: SessionState, first?: StoredRecord, previous?: KeptToken): Promise<boolean> {
    const started = Date.now();
    const regenerate = s.regenerate!;
    let fresh = first;
    for (let attempt = 1; ; attempt++) {
      fresh ??= await this.store.get(s.storedId!);
      if (!fresh) throw new StowageError("SESSION_ENDED", "the session ended before it could be regenerated");
      if (previous && attempt > 1 && this.#rotatedElsewhere(fresh))
        return this.#keepToken(s, fresh, previous);
      const now = this.#clock.now();
      const next = mergeRecord(fresh, s);
      next.id = s.id;
      next.verifier = s.verifier;
      next.rotatedAt = now;
      next.idleExpiresAt = now + this.idleTimeout;
      try {
        const version = await this.store.rename(fresh.id, next, {
          graceMs: regenerate.graceMs,
          ifVersion: fresh.version,
        });
        const oldId = fresh.id;
        s.storedId = s.id;
        s.version = version;
        s.rotatedAt = now;
        s.idleExpiresAt = next.idleExpiresAt;
        adoptAttributes(s, next.attributes);
        s.regenerate = undefined;
        applyRecordMeta(s, next);
        forgetSizes(s);
        clearPending(s);
        this.#stats.regenerated++;
        this.emit("regenerated", { oldId, id: s.id, reason: regenerate.reason });
        return true;
      } catch (error) {
        // SESSION_ENDED here may only mean the old id turned into an alias; the re-read tells.
        if (!isStowageError(error, "VERSION_CONFLICT") && !isStowageError(error, "SESSION_ENDED"))
          throw error;
        fresh = undefined;
        await this.#conflict(s.id, attempt, started);
      }
    }
  }

  async #update(
    s: SessionState,
    key: string,
    fn: (value: JsonValue | undefined) => unknown,
  ): Promise<JsonValue> {
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
      const fresh = await this.store.get(s.storedId!);
      if (!fresh) throw new StowageError("SESSION_ENDED", "the session has ended");
      s.storedId = fresh.id;
      const current = Object.hasOwn(fresh.attributes, key) ? fresh.attributes[key] : undefined;
      const value = JSON.parse(serializeJson(fn(current), key)) as JsonValue;
      const bytes = attributesBytes({ ...fresh.attributes, [key]: value });
      if (bytes > this.#host.maxAttributesBytes) {
        throw new StowageError(
          "ATTRIBUTES_TOO_LARGE",
          `attributes would take ${bytes} bytes; the limit is ${this.#host.maxAttributesBytes}`,
        );
      }
      const idle = this.#clock.now() + this.idleTimeout;
      try {
        s.version = await this.store.commit(
          fresh.id,
          { set: { [key]: value }, meta: { idleExpiresAt: idle } },
          { ifVersion: fresh.version },
        );
      } catch (error) {
        // SESSION_ENDED may only mean that a rename moved the record since the read (the id asked for is
        // an alias now): the next read follows the alias, or finds the session really gone.
        if (!isStowageError(error, "VERSION_CONFLICT") && !isStowageError(error, "SESSION_ENDED"))
          throw error;
        await this.#conflict(s.id, attempt, started);
        continue;
      }
      s.idleExpiresAt = idle;
      setAttribute(s, key, value);
      s.pending?.delete(key);
      forgetSizes(s);
      return value;
    }
  }

  async #acquire(s: SessionState, options: AcquireOptions): Promise<SessionLease> {
    if (s.storedId === undefined) {
      s.dirty = true;
      await this.#serialized(s, true);
    }
    const check = new OptionChecker("acquire", options, ["leaseMs", "waitMs"]);
    const leaseMs = check.ms("leaseMs", 10_000);
    const deadline = Date.now() + check.ms("waitMs", 5_000, { zero: true });
    for (let attempt = 1; ; attempt++) {
      const lock = await this.store.lock(s.storedId!, leaseMs);
      if (lock) {
        let released = false;
        const lease: SessionLease = {
          fence: lock.fence,
          release: async () => {
            if (released) return;
            released = true;
            if (s.lease === lease) s.lease = undefined;
            await lock.release();
          },
          [Symbol.asyncDispose]: () => lease.release(),
        };
        s.lease = lease;
        return lease;
      }
      if (Date.now() >= deadline) throw new StowageError("LOCK_TIMEOUT", "the session lease stayed busy");
      await sleep(Math.min(5 * attempt, 50) * (0.5 + Math.random()));
    }
  }

  /**
   * Runs a write on the stored id, then `done` with its result. The usual write succeeds at once and
   * costs no async frame; a write that met a rename goes through `#followRename`.
   */
  #retarget<T>(
    s: SessionState,
    write: (id: string) => Promise<T>,
    done: (result: T) => boolean,
  ): Promise<boolean> {
    return write(s.storedId!).then(done, (error: unknown) => this.#followRename(s, write, done, error));
  }

  /**
   * Retries a write that a parallel rename got in the way of: SESSION_ENDED when the id became a rotation
   * alias (the write goes to the id it points to), VERSION_CONFLICT while a store holds the record for a
   * rename in progress (a write without `ifVersion` conflicts with nothing else). Anything else, or a
   * session that is really gone, is the caller's error.
   */
  async #followRename<T>(
    s: SessionState,
    write: (id: string) => Promise<T>,
    done: (result: T) => boolean,
    first: unknown,
  ): Promise<boolean> {
    const started = Date.now();
    let error = first;
    for (let attempt = 1; ; attempt++) {
      const moved = isStowageError(error, "SESSION_ENDED");
      if (!moved && !isStowageError(error, "VERSION_CONFLICT")) throw error;
      if (!moved) await this.#conflict(s.id, attempt, started);
      const current = await this.store.get(s.storedId!);
      if (!current || (moved && current.via === undefined)) throw error;
      s.storedId = current.id;
      try {
        return done(await write(current.id));
      } catch (next) {
        error = next;
      }
    }
  }

  async #conflict(id: string, attempt: number, started: number): Promise<void> {
    this.#stats.conflicts++;
    this.emit("conflict", { id, attempt });
    if (Date.now() - started > MAX_UPDATE_MS) {
      throw new StowageError("VERSION_CONFLICT", `gave up after ${attempt} conflicting attempts`);
    }
    // Jittered backoff spreads the contenders out so one of them wins each round.
    const ceiling = Math.min(2 ** Math.min(attempt, 6), 64);
    await sleep(Math.random() * ceiling);
  }

  async #ended(id: string, userId: string | undefined): Promise<void> {
    this.#stats.ended++;
    this.emit("ended", { id, ...(userId === undefined ? {} : { userId }) });
    const event: StoreEvent = { type: "ended", id, at: this.#clock.now(), origin: this.#origin };
    if (userId !== undefined) event.userId = userId;
    await this.store.publish(event);
  }

  #subscribe(): void {
    if (this.#unsubscribe || this.#closed) return;
    this.#unsubscribe = this.store.subscribe((event) => {
      if (event.origin === this.#origin) return;
      if (event.type === "ended" || event.type === "revoked") {
        this.emit("ended", {
          id: event.id,
          ...(event.userId === undefined ? {} : { userId: event.userId }),
          remote: true,
        });
      } else if (event.type === "replaced" && event.connection) {
        this.emit("replaced", { id: event.id, connection: event.connection, remote: true });
      }
    });
    this.#unsubscribe.catch((error: unknown) => {
      this.#unsubscribe = undefined;
      this.emit("error", error instanceof Error ? error : new Error(String(error)));
    });
  }
}

function isUserId(userId: unknown): userId is string {
  return typeof userId === "string" && userId.length > 0 && isStorableText(userId);
}

function fromRecord(record: PeekedRecord, token: string, secret: string, borrowed: boolean): SessionState {
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

function toRecord(s: SessionState): SessionRecord {
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
function mergeRecord(fresh: StoredRecord, s: SessionState): SessionRecord {
  const { via: _via, ...record } = fresh;
  const attributes = { ...record.attributes };
  if (s.pending) {
    for (const [key, value] of s.pending) {
      if (value === UNSET) delete attributes[key];
      else setOwn(attributes, key, value);
    }
  }
  record.attributes = attributes;
  for (const [key, value] of Object.entries(s.meta)) {
    if (value === undefined) continue;
    if (value === null) delete (record as Record<string, unknown>)[key];
    else (record as Record<string, unknown>)[key] = value;
  }
  return record;
}

function applyRecordMeta(s: SessionState, r: SessionRecord): void {
  s.userId = r.userId;
  s.level = r.level;
  s.loginType = r.loginType;
  s.lastLoginAt = r.lastLoginAt;
  s.language = r.language;
  s.channel = r.channel;
  s.expiresAt = r.expiresAt;
}

const NOTHING_WRITTEN: Promise<boolean> = Promise.resolve(false);

/** What the usual commit writes (see `#plan`). */
interface CommitPlan {
  delta: SessionDelta | undefined;
  touch: boolean;
  idle: number;
  /** When it was planned. */
  now: number;
}

/** Books a written delta on the session: its new version and idle expiry; what it wrote is no longer pending. */
function deltaWritten(s: SessionState, delta: SessionDelta, idle: number, version: number): true {
  s.version = version;
  s.idleExpiresAt = idle;
  clearWritten(s, delta);
  return true;
}

/** The store's synchronous lane, bound, if it offers all of it. */
function syncLane(store: SessionStore): SyncLane | undefined {
  if (!store.peekNow || !store.commitNow || !store.touchNow) return undefined;
  return {
    peekNow: store.peekNow.bind(store),
    commitNow: store.commitNow.bind(store),
    touchNow: store.touchNow.bind(store),
  };
}

/** The delta a commit writes, with the idle expiry moved to `idle`; undefined when nothing is pending. */
function pendingDelta(s: SessionState, idle: number): SessionDelta | undefined {
  const pending = s.pending;
  const metaChanged = hasKeys(s.meta);
  if (pending === undefined && !metaChanged) return undefined;
  const delta: SessionDelta = {
    meta: metaChanged ? { ...s.meta, idleExpiresAt: idle } : { idleExpiresAt: idle },
  };
  if (pending === undefined) return delta;
  const set: Attributes = {};
  const unset: string[] = [];
  for (const [key, value] of pending) {
    if (value === UNSET) unset.push(key);
    else setOwn(set, key, value);
  }
  if (unset.length < pending.size) delta.set = set;
  if (unset.length > 0) delta.unset = unset;
  return delta;
}

/** True when a plain object has an own key; unlike Object.keys, builds no array. */
function hasKeys(object: object): boolean {
  for (const _ in object) return true;
  return false;
}

/** Drops from the pending changes what a delta wrote; a change made while it was in flight stays pending. */
function clearWritten(s: SessionState, delta: SessionDelta): void {
  const pending = s.pending;
  if (pending !== undefined) {
    const set = delta.set;
    const unset = delta.unset;
    let written = 0;
    if (set) for (const key in set) if (Object.hasOwn(set, key) && pending.get(key) === set[key]) written++;
    if (unset) for (const key of unset) if (pending.get(key) === UNSET) written++;
    // Usually the commit wrote all that was pending: drop the Map rather than empty it (a delete may shrink it).
    if (written === pending.size) s.pending = undefined;
    else {
      if (set) for (const key of Object.keys(set)) if (pending.get(key) === set[key]) pending.delete(key);
      if (unset) for (const key of unset) if (pending.get(key) === UNSET) pending.delete(key);
    }
  }
  if (hasKeys(s.meta)) {
    const meta = s.meta as Record<string, unknown>;
    const written = (delta.meta ?? {}) as Record<string, unknown>;
    const left: Record<string, unknown> = {};
    for (const key in meta) if (meta[key] !== written[key]) left[key] = meta[key];
    s.meta = left;
  }
  s.dirty = s.pending !== undefined || hasKeys(s.meta);
}

function clearPending(s: SessionState): void {
  s.pending = undefined;
  s.meta = {};
  s.dirty = false;
}
