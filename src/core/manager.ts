import { randomBytes } from "node:crypto";
import { type Clock, systemClock } from "./clock.js";
import { CommitEngine } from "./commit.js";
import { Emitter, type SessionEvents } from "./events.js";
import { isStorableText } from "./json.js";
import { KeyRing, type SealingKey } from "./keyring.js";
import { OptionChecker } from "./options.js";
import { type Attributes, expiryOf, type LoginType, type SessionRecord } from "./record.js";
import { fromRecord } from "./record-map.js";
import { acquireLease, conflictPause, type RetryHost, updateAttribute } from "./retry.js";
import { CSRF_KEY, Session, type SessionHost } from "./session.js";
import { sessionState, state } from "./session-state.js";
import type { SessionStats } from "./stats.js";
import type { PeekedRecord, SessionStore, StoreEvent, SyncLane } from "./store.js";
import {
  type CheckedToken,
  issueToken,
  isValidId,
  matchesVerifier,
  shareStoredId,
  TokenMemo,
} from "./tokens.js";

export type { SessionStats } from "./stats.js";

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
  /** `http` for a session a token names; `connection` for a long-lived connection's (see docs/connections.md). */
  kind: "http" | "connection";
}

/** Options for `Sessions.commit` (the store's own `commit` takes `CommitOptions`). */
export interface SessionCommitOptions {
  /** Allow a due routine rotation in this commit; pass false once response headers are out. @default true */
  rotate?: boolean;
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

/** The session manager: creates, loads, commits and ends sessions on one store. */
export class Sessions<A extends object = Attributes> extends Emitter<SessionEvents> {
  /** The store behind this manager. */
  readonly store: SessionStore;
  /** Absolute lifetime in ms. */
  readonly ttl: number;
  /** Idle lifetime in ms. */
  readonly idleTimeout: number;
  /** The key ring that seals channel secrets (the `keys` option); undefined without one. */
  readonly keys: KeyRing | undefined;
  readonly #touchAfter: number;
  readonly #rotateEvery: number;
  readonly #rotationGraceMs: number;
  readonly #clock: Clock;
  readonly #tokens = new TokenMemo();
  readonly #host: SessionHost;
  readonly #engine: CommitEngine;
  /** The store's `peek`, bound, when it has one: loads then copy only the values a request reads. */
  readonly #peeks: boolean;
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
    this.#peeks = typeof store.peek === "function";
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
    const conflict = async (id: string, attempt: number, started: number): Promise<void> => {
      this.#stats.conflicts++;
      this.emit("conflict", { id, attempt });
      await conflictPause(attempt, started);
    };
    this.#engine = new CommitEngine(store, this.#lane, {
      idleTimeout: this.idleTimeout,
      touchAfter: this.#touchAfter,
      rotateEvery: this.#rotateEvery,
      rotationGraceMs: this.#rotationGraceMs,
      stats: this.#stats,
      now: () => this.#clock.now(),
      wallNow: (now) => this.#wallNow(now),
      emit: (event, payload) => this.emit(event, payload),
      ended: (id, userId) => this.#ended(id, userId),
      conflict,
    });
    const retry: RetryHost = {
      store,
      idleTimeout: this.idleTimeout,
      maxAttributesBytes,
      now: () => this.#clock.now(),
      conflict,
      commit: (s) => this.#engine.commit(s, true),
    };
    this.keys = keys;
    this.#host = {
      maxAttributesBytes,
      ttl: this.ttl,
      idleTimeout: this.idleTimeout,
      keys,
      now: () => this.#clock.now(),
      commit: (s) => this.#engine.commit(s, true),
      update: (s, key, fn) => updateAttribute(retry, s, key, fn),
      acquire: (s, opts) => acquireLease(retry, s, opts),
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
    // Called through the store object each time (not bound once), so a wrapper installed later
    // (stowage/prometheus, stowage/opentelemetry) sees every call.
    const record = await (this.#peeks ? this.store.peek!(checked.id) : this.store.get(checked.id));
    return this.#loaded(checked, record, this.#peeks);
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
    // A connection session has no token: it resumes by proof (stowage/ws), never by a token's secret.
    if (!record || record.connection !== undefined) {
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
    if (!record.via) shareStoredId(checked, record.id);
    if (this.listens("loaded")) this.emit("loaded", { id: record.id });
    return new Session<A>(this.#host, fromRecord(record, checked.token, checked.secret, borrowed));
  }

  /**
   * Writes what changed in the session: nothing when nothing changed, the per-key delta otherwise,
   * an insert for a new session that holds something, a rename when the id is regenerated, a delete
   * when it ended. Resolves true if the store was written.
   */
  commit(session: Session<A>, options: SessionCommitOptions = {}): Promise<boolean> {
    return this.#engine.commit(session[state], options.rotate ?? true);
  }

  /**
   * @internal `commit` done at once, when the store has a synchronous lane and the commit is the usual
   * kind (a delta, an idle refresh or nothing, on a stored session, with no other commit in flight):
   * true if the store was written. Undefined when it must go through `commit` instead. Throws what
   * `commit` rejects with.
   */
  commitNow(session: Session<A>, options: SessionCommitOptions = {}): boolean | undefined {
    return this.#engine.commitNow(session[state], options.rotate ?? true);
  }

  /**
   * @internal The live session of a connection session's record, held by the connection of `generation`:
   * its commits are fenced by that generation and refresh its idle expiry by `idleTimeout`.
   */
  connectionSession(record: SessionRecord, generation: number, idleTimeout: number): Session<A> {
    const s = fromRecord(record, "", "", false);
    s.generation = generation;
    s.idleTimeout = idleTimeout;
    return new Session<A>(this.#host, s);
  }

  /** @internal The manager's clock, read. */
  now(): number {
    return this.#clock.now();
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
          kind: r.connection === undefined ? "http" : "connection",
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
        const { id, node } = event.connection;
        this.emit("replaced", { id: event.id, connection: { id, node }, remote: true });
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

/**
 * The store's synchronous lane, if it offers all of it: the store itself, whose methods are looked up on
 * every call rather than bound once, so a wrapper installed later (stowage/prometheus) sees each call.
 */
function syncLane(store: SessionStore): SyncLane | undefined {
  return store.peekNow && store.commitNow && store.touchNow ? (store as SyncLane) : undefined;
}
