import { isStowageError, replacedError, StowageError } from "./errors.js";
import type { SessionEvents } from "./events.js";
import { decodeInto, setOwn } from "./json.js";
import type { Attributes } from "./record.js";
import { applyRecordMeta, mergeRecord, toRecord } from "./record-map.js";
import {
  adoptAttributes,
  forgetSizes,
  idleExpiry,
  issueNextToken,
  type SessionState,
  UNSET,
} from "./session-state.js";
import type { SessionStats } from "./stats.js";
import type { SessionDelta, SessionStore, StoredRecord, SyncLane } from "./store.js";

/** What the commit engine needs from the manager: its settings, its counters and its events. */
export interface CommitHost {
  readonly idleTimeout: number;
  readonly touchAfter: number;
  readonly rotateEvery: number;
  readonly rotationGraceMs: number;
  readonly stats: SessionStats;
  now(): number;
  /** `now` for the store's synchronous lane (see `SyncLane`), or undefined. */
  wallNow(now: number): number | undefined;
  emit<K extends keyof SessionEvents>(event: K, payload: SessionEvents[K]): void;
  /** Counts, emits and publishes a session that ended. */
  ended(id: string, userId: string | undefined): Promise<void>;
  /** Counts and reports one conflicting attempt, then waits before the next (see `conflictPause`). */
  conflict(id: string, attempt: number, started: number): Promise<void>;
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

/**
 * Writes sessions to the store: the per-key delta of the usual commit, inserts, renames (login,
 * regeneration, routine rotation with its alias), logout and end. Commits of one session run one after
 * another. On a store with a synchronous lane the usual commit is done at once (`commitNow`).
 */
export class CommitEngine {
  readonly #store: SessionStore;
  readonly #lane: SyncLane | undefined;
  readonly #host: CommitHost;

  constructor(store: SessionStore, lane: SyncLane | undefined, host: CommitHost) {
    this.#store = store;
    this.#lane = lane;
    this.#host = host;
  }

  /**
   * `commit` done at once, when the store has a synchronous lane and the commit is the usual
   * kind (a delta, an idle refresh or nothing, on a stored session, with no other commit in flight):
   * true if the store was written. Undefined when it must go through `commit` instead. Throws what
   * `commit` rejects with.
   */
  commitNow(s: SessionState, rotate: boolean): boolean | undefined {
    const lane = this.#lane;
    if (lane === undefined || s.queued > 0) return undefined;
    const plan = this.#plan(s, rotate);
    if (typeof plan === "string") return undefined;
    if (plan.delta) {
      let version: number;
      try {
        const options = s.generation === undefined ? undefined : { ifVersion: s.version };
        version = lane.commitNow(s.storedId!, plan.delta, options, this.#host.wallNow(plan.now));
      } catch (error) {
        // The id may have become a rotation alias, or a fenced commit met another version: the async
        // path follows the alias, or re-reads the generation.
        if (isStowageError(error, "SESSION_ENDED") || isStowageError(error, "VERSION_CONFLICT"))
          return undefined;
        throw error;
      }
      deltaWritten(s, plan.delta, plan.idle, version);
    } else if (plan.touch) {
      lane.touchNow(s.storedId!, plan.idle, this.#host.wallNow(plan.now));
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
    const now = this.#host.now();
    const fenced = s.generation !== undefined;
    if (rotate && !fenced && this.#host.rotateEvery > 0 && now - s.rotatedAt >= this.#host.rotateEvery)
      return "rotate";
    const idleTimeout = s.idleTimeout ?? this.#host.idleTimeout;
    const touchAfter = fenced ? Math.min(this.#host.touchAfter, idleTimeout / 4) : this.#host.touchAfter;
    const idle = idleExpiry(s, now, this.#host.idleTimeout);
    const delta = pendingDelta(s, idle);
    const touch = delta === undefined && idle > s.idleExpiresAt && idle - s.idleExpiresAt >= touchAfter;
    return { delta, touch, idle, now };
  }

  /** Runs commits of one session one after another; the usual lone commit starts at once. */
  commit(s: SessionState, rotate: boolean): Promise<boolean> {
    const previous = s.committing;
    const next = () => this.#commit(s, rotate);
    s.queued++;
    const run = previous === undefined ? next() : previous.then(next, next);
    s.committing = run;
    return run;
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
    if (delta && s.generation !== undefined) return this.#writeFenced(s, delta, idle);
    if (delta) {
      return this.#writeFollowingRename(
        s,
        (id) => this.#store.commit(id, delta),
        (version) => deltaWritten(s, delta, idle, version),
      );
    }
    if (plan.touch) {
      return this.#writeFollowingRename(
        s,
        (id) => this.#store.touch(id, idle),
        () => {
          s.idleExpiresAt = idle;
          return true;
        },
      );
    }
    return NOTHING_WRITTEN;
  }

  /**
   * A connection session's commit: conditional on the version it knows, and on a conflict re-read to
   * tell a parallel writer (try again) from a resume that replaced this holder (SESSION_ENDED).
   */
  async #writeFenced(s: SessionState, delta: SessionDelta, idle: number): Promise<boolean> {
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
      try {
        return deltaWritten(
          s,
          delta,
          idle,
          await this.#store.commit(s.storedId!, delta, { ifVersion: s.version }),
        );
      } catch (error) {
        if (!isStowageError(error, "VERSION_CONFLICT")) throw error;
      }
      const fresh = await this.#store.get(s.storedId!);
      if (!fresh) throw new StowageError("SESSION_ENDED", "the session has ended");
      if (fresh.connection?.generation !== s.generation) throw replacedError();
      s.version = fresh.version;
      if (attempt > 1) await this.#host.conflict(s.id, attempt, started);
    }
  }

  /** Ending, logging out, inserting and regenerating. */
  async #writeLifecycle(s: SessionState, rotate: boolean): Promise<boolean> {
    if (s.ended) {
      const stored = s.storedId;
      if (stored === undefined) return false;
      const removed = await this.#store.delete(stored);
      s.storedId = undefined;
      if (removed) await this.#host.ended(stored, s.userId);
      return removed;
    }
    let wrote = false;
    if (s.dropId !== undefined) {
      const dropped = s.dropId;
      if (await this.#store.delete(dropped)) await this.#host.ended(dropped, undefined);
      s.dropId = undefined;
      this.#host.stats.regenerated++;
      this.#host.emit("regenerated", { oldId: dropped, id: s.id, reason: "logout" });
      wrote = true;
    }
    if (s.storedId === undefined) return (await this.#insert(s)) || wrote;
    if (s.regenerate) return this.#rename(s);
    return (await this.#write(s, rotate)) || wrote;
  }

  async #insert(s: SessionState): Promise<boolean> {
    if (!s.dirty) return false;
    const record = toRecord(s);
    const encoded = s.encoded;
    // The insert writes the whole session as it is now; what changes while it is in flight is pending
    // for the next commit. A failed insert leaves the session to be inserted whole again.
    clearPending(s);
    try {
      if (encoded === undefined || !hasKeys(encoded)) await this.#store.insert(record);
      else if (this.#store.insertEncoded) await this.#store.insertEncoded(record, { ...encoded });
      else await this.#store.insert({ ...record, attributes: decodeInto(record.attributes, encoded) });
    } catch (error) {
      s.dirty = true;
      throw error;
    }
    s.storedId = s.id;
    s.version = 1;
    this.#host.stats.created++;
    this.#host.emit("created", { id: s.id, ...(s.userId === undefined ? {} : { userId: s.userId }) });
    return true;
  }

  /** Routine rotation: a new token, with the old one kept as an alias for in-flight requests. */
  async #rotate(s: SessionState): Promise<boolean> {
    const fresh = await this.#store.get(s.storedId!);
    if (!fresh) throw new StowageError("SESSION_ENDED", "the session has ended");
    if (this.#rotatedElsewhere(fresh)) return this.#keepToken(s, fresh);
    const { id, token, verifier, secret, oldId, oldIdAt } = s;
    const previous: KeptToken = { id, token, verifier, secret, oldId, oldIdAt };
    issueNextToken(s, "rotation", this.#host.rotationGraceMs);
    return this.#rename(s, fresh, previous);
  }

  /** True when a parallel request has rotated this record already (it came through an alias, or is young). */
  #rotatedElsewhere(fresh: StoredRecord): boolean {
    return fresh.via !== undefined || this.#host.now() - fresh.rotatedAt < this.#host.rotateEvery;
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
      fresh ??= await this.#store.get(s.storedId!);
      if (!fresh) throw new StowageError("SESSION_ENDED", "the session ended before it could be regenerated");
      if (previous && attempt > 1 && this.#rotatedElsewhere(fresh))
        return this.#keepToken(s, fresh, previous);
      const now = this.#host.now();
      const next = mergeRecord(fresh, s);
      next.id = s.id;
      next.verifier = s.verifier;
      next.rotatedAt = now;
      next.idleExpiresAt = idleExpiry(s, now, this.#host.idleTimeout);
      try {
        const version = await this.#store.rename(fresh.id, next, {
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
        this.#host.stats.regenerated++;
        this.#host.emit("regenerated", { oldId, id: s.id, reason: regenerate.reason });
        return true;
      } catch (error) {
        // SESSION_ENDED here may only mean the old id turned into an alias; the re-read tells.
        if (!isStowageError(error, "VERSION_CONFLICT") && !isStowageError(error, "SESSION_ENDED"))
          throw error;
        fresh = undefined;
        await this.#host.conflict(s.id, attempt, started);
      }
    }
  }

  /**
   * Runs a write on the stored id, then `done` with its result. The usual write succeeds at once and
   * costs no async frame; a write that met a rename goes through `#followRename`.
   */
  #writeFollowingRename<T>(
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
      if (!moved) await this.#host.conflict(s.id, attempt, started);
      const current = await this.#store.get(s.storedId!);
      if (!current || (moved && current.via === undefined)) throw error;
      s.storedId = current.id;
      try {
        return done(await write(current.id));
      } catch (next) {
        error = next;
      }
    }
  }
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
