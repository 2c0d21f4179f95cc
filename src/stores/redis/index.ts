import { randomBytes } from "node:crypto";
import type { Writable } from "node:stream";
import { Cluster, Redis } from "ioredis";
import { StowageError } from "../../core/errors.js";
import { type OptionChecker as Checker, OptionChecker } from "../../core/options.js";
import { expiryOf, type SessionRecord } from "../../core/record.js";
import type {
  CommitOptions,
  OutboxLimits,
  OutboxPage,
  PeekedRecord,
  RenameOptions,
  ScanOptions,
  SessionDelta,
  SessionStore,
  StoredRecord,
  StoreEvent,
  StoreEventListener,
  StoreLock,
} from "../../core/store.js";
import {
  conflict,
  duplicate,
  ended,
  stillChanging,
  unavailable as storeUnavailable,
} from "../shared/errors.js";
import { EventFanout } from "../shared/events.js";
import { scanBatch } from "../shared/scan.js";
import { parseStoreUrl } from "../shared/url.js";
import {
  type AliasFields,
  decodeAlias,
  decodeRecord,
  type EncodedDelta,
  encodeDelta,
  recordFields,
} from "./codec.js";
import { type Deadline, Deadlines } from "./deadlines.js";
import {
  COMMIT,
  COMMIT_PLAIN,
  CONSUME,
  DELETE,
  DELETE_IF_USER,
  evalScript,
  INDEX_ADD,
  INSERT,
  LOCK,
  type LuaScript,
  OUTBOX_APPEND,
  OUTBOX_READ,
  OUTBOX_TRIM,
  RENAME_ABORT,
  RENAME_BEGIN,
  RENAME_FINISH,
  runScript,
  TOUCH,
  UNLOCK,
  USER_LIST,
} from "./scripts.js";

/** Options for `RedisStore`. Give at most one of `url`, `client` and `cluster`. */
export interface RedisStoreOptions {
  /** URL of a standalone server (`redis://` or `rediss://`). @default "redis://127.0.0.1:6379" */
  url?: string;
  /** An ioredis Redis or Cluster client to use; the store neither configures nor closes it. @default undefined */
  client?: Redis | Cluster;
  /** Seed nodes of a Redis Cluster; the store opens an ioredis Cluster client on them. @default undefined */
  cluster?: { nodes: { host: string; port: number }[] };
  /** Prefix of every key and of the event channel; must not contain `{` or `}`. @default "stowage:" */
  prefix?: string;
  /** Upper bound of every store call in ms; past it the call rejects with STORE_UNAVAILABLE. @default 2000 */
  timeoutMs?: number;
}

const DAY = 86_400_000;
/**
 * Commands a corked socket collects before it flushes (see `#cork`): enough to save most syscalls, few
 * enough that Redis starts on the first while the rest are still being issued.
 */
const CORK_BATCH = 32;
/** Field and value strings COMMIT_PLAIN takes: it unpacks them in one call, and Lua's C stack holds ~8000. */
const PLAIN_MAX_VALUES = 996;
const CONSUME_ATTEMPTS = 64;
const ALIAS_HOPS = 8;
const EVENT_TYPES = new Set(["ended", "replaced", "revoked", "outbox"]);

function noop(): void {}

/**
 * A URL ioredis can use: redis: or rediss:, a host, a port from 1 to 65535 if any. ioredis's own parse
 * throws a TypeError that quotes the whole URL, password included; this names only what is wrong.
 */
function checkRedisUrl(check: Checker, url: unknown): void {
  const parsed = parseStoreUrl(check, "url", url, {
    protocols: ["redis:", "rediss:"],
    expected: "redis://[user:password@]host[:port][/db]",
  });
  if (parsed.hostname === "") throw check.error("url needs a host");
  const db = parsed.pathname.replace(/^\//, "");
  if (db !== "" && !/^\d{1,5}$/.test(db)) throw check.error("url path must be a database number");
}

function unavailable(message: string, cause?: unknown): StowageError {
  return storeUnavailable("Redis", message, cause);
}

function translate(error: unknown, what: string): StowageError {
  if (error instanceof StowageError) return error;
  return unavailable(`${what} failed`, error);
}

/** '=' marks a present user in script replies (so an empty user id stays distinct from none). */
function untag(value: unknown): string | undefined {
  return typeof value === "string" && value.startsWith("=") ? value.slice(1) : undefined;
}

function reply(value: unknown): unknown[] {
  if (!Array.isArray(value)) throw unavailable("unexpected script reply");
  return value;
}

/** 1 (or -1 from COMMIT): no such record; anything else: a version conflict or a live rename mark. */
function statusError(status: unknown): StowageError {
  return status === 1 ? ended() : conflict();
}

function pexpireAt(record: SessionRecord): number {
  return Math.ceil(expiryOf(record));
}

/** `text` with Redis glob's special characters escaped, so a prefix matches only itself. */
function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, "\\$&");
}

function parseEvent(message: string): { source: unknown; event: StoreEvent } | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(message);
  } catch {
    return undefined;
  }
  if (typeof parsed !== "object" || parsed === null) return undefined;
  const { s, e } = parsed as { s?: unknown; e?: Partial<StoreEvent> };
  if (typeof e !== "object" || e === null) return undefined;
  if (!EVENT_TYPES.has(e.type as string) || typeof e.id !== "string" || typeof e.at !== "number") {
    return undefined;
  }
  return { source: s, event: e as StoreEvent };
}

/**
 * Sessions in Redis, standalone or Cluster (ioredis).
 *
 * Layout (every key of one session shares the `{id}` hash tag, so each script touches one slot):
 * - `{prefix}{<id>}`: a HASH of meta fields (`v`, `verifier`, `created`, `rotated`, `exp`, `idle`, `user`,
 *   `level`, `lt`, `lla`, `lang`, `chan`, `conn`) and one `a:<key>` field per attribute holding its JSON;
 *   it expires natively (PEXPIREAT) at min(exp, idle). A commit HSETs/HDELs only the changed fields.
 *   Inside a rename's grace window the old id's hash is an alias instead: `{ alias, verifier, until }`.
 * - `{prefix}{<id>}:lock` and `{prefix}{<id>}:fence`: the lease and its fence counter.
 * - `{prefix}u:{<userId>}`: the user index, a sorted set of ids scored by absolute expiry. It lives in
 *   another slot, so it is written by its own command after the session's script (an id enters it only
 *   once its hash exists), pruned by score on read, and `listByUser` drops ids whose hash is gone or
 *   belongs to someone else now; the hash is the truth, the index only a hint.
 * - `{prefix}events`: the pub/sub channel; on a Cluster a sharded one (SPUBLISH / SSUBSCRIBE).
 *
 * No request-path call uses KEYS or SCAN (only `scan`, the operators' listing, does). Every call rejects with STORE_UNAVAILABLE within `timeoutMs` when Redis is
 * unreachable, and the same store works again once it is back.
 *
 * @example
 * const store = new RedisStore({ url: "redis://127.0.0.1:6379", prefix: "myapp:" });
 */
export class RedisStore implements SessionStore {
  readonly name = "redis";
  readonly #client: Redis | Cluster;
  readonly #owned: boolean;
  readonly #prefix: string;
  readonly #timeoutMs: number;
  readonly #channel: string;
  /** Tags this store's own events, so it can skip their echo (local listeners already had them). */
  readonly #source = randomBytes(9).toString("base64url");
  readonly #listeners = new EventFanout();
  readonly #deadlines: Deadlines;
  /** The socket corked until the end of this event-loop turn, if any, and the commands it holds (see `#cork`). */
  #corked: Writable | undefined;
  #batched = 0;
  #readyWait: Promise<void> | undefined;
  #subscriber: Redis | Cluster | undefined;
  #subscribing: Promise<void> | undefined;
  #closed = false;

  constructor(options: RedisStoreOptions = {}) {
    const check = new OptionChecker("RedisStore", options, [
      "url",
      "client",
      "cluster",
      "prefix",
      "timeoutMs",
    ]);
    const given = [options.url, options.client, options.cluster].filter((o) => o !== undefined).length;
    if (given > 1) throw check.error("give one of url, client or cluster");
    if (options.url !== undefined) checkRedisUrl(check, options.url);
    const prefix = check.text("prefix", "stowage:");
    if (/[{}]/.test(prefix)) throw check.error("prefix must not contain { or }");
    const timeoutMs = check.ms("timeoutMs", 2000);
    if (options.cluster !== undefined && !(options.cluster.nodes?.length > 0)) {
      throw check.error("cluster needs at least one node");
    }
    this.#prefix = prefix;
    this.#timeoutMs = timeoutMs;
    this.#deadlines = new Deadlines(timeoutMs, (what) =>
      unavailable(`${what} timed out after ${timeoutMs} ms`),
    );
    this.#channel = `${prefix}events`;
    this.#owned = options.client === undefined;
    this.#client = options.client ?? this.#open(options);
  }

  // Fail fast instead of queueing: with no offline queue and no resend, a command issued while Redis is
  // down rejects at once, and one in flight when the socket drops rejects on close, so a write the caller
  // was told failed is never replayed minutes later. `#ready` waits (bounded) for a reconnect instead.
  #open(options: RedisStoreOptions): Redis | Cluster {
    const perNode = {
      commandTimeout: this.#timeoutMs,
      connectTimeout: this.#timeoutMs,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
    };
    const client = options.cluster
      ? new Cluster(options.cluster.nodes, {
          lazyConnect: true,
          enableOfflineQueue: false,
          clusterRetryStrategy: (times: number) => Math.min(100 * times, 1000),
          slotsRefreshTimeout: this.#timeoutMs,
          redisOptions: perNode,
        })
      : new Redis(options.url ?? "redis://127.0.0.1:6379", {
          ...perNode,
          lazyConnect: true,
          enableOfflineQueue: false,
          retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 5), 1000),
        });
    // Failures reach callers as STORE_UNAVAILABLE; without a listener ioredis would print every retry.
    client.on("error", noop);
    return client;
  }

  /** The ioredis client (Redis or Cluster) the store uses. */
  get client(): Redis | Cluster {
    return this.#client;
  }

  /** The record's hash and its outbox's list and head: one slot, by the `{id}` tag. */
  #keysOf(id: string): string[] {
    const key = this.#key(id);
    return [key, `${key}:out`, `${key}:outh`];
  }

  #key(id: string): string {
    return `${this.#prefix}{${id}}`;
  }

  #userKey(userId: string): string {
    return `${this.#prefix}u:{${userId}}`;
  }

  /**
   * Undefined when the client is ready; otherwise what a call waits for. A refused or dropped connection
   * fails the call at once (the client keeps reconnecting in the background, and a later call succeeds
   * once it is back): only a server that is slow to answer costs the `timeoutMs` bound.
   */
  #ready(): Promise<void> | undefined {
    const client = this.#client;
    const status = client.status;
    if (status === "ready") return undefined;
    if (status === "reconnecting" || status === "close" || status === "end") {
      return Promise.reject(unavailable(`not reachable (${status})`));
    }
    if (status === "wait") client.connect().catch(noop);
    this.#readyWait ??= new Promise<void>((resolve, reject) => {
      const settle = (error?: StowageError) => {
        this.#readyWait = undefined;
        client.off("ready", onReady);
        client.off("close", onClose);
        if (error) reject(error);
        else resolve();
      };
      const onReady = () => settle();
      const onClose = () => settle(unavailable("the server refused or closed the connection"));
      client.once("ready", onReady);
      client.once("close", onClose);
    });
    return this.#readyWait;
  }

  /**
   * Runs one store call under the `timeoutMs` bound. `call.expired` tells a multi-step call whether its
   * caller still waits, so it never passes a commit point after the caller was told it failed. The hot
   * path costs one Promise and one queue entry: all calls share one deadline timer, and a ready client
   * is used at once.
   */
  #run<T>(what: string, fn: (call: Deadline) => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(unavailable("the store is closed"));
    return new Promise<T>((resolve, reject) => {
      const deadlines = this.#deadlines;
      const call = deadlines.track(reject, what);
      const ready = this.#ready();
      let work: Promise<T>;
      if (ready === undefined) {
        this.#cork();
        try {
          work = fn(call);
        } catch (error) {
          work = Promise.reject(error);
        }
      } else {
        work = ready.then(() => {
          if (call.expired) throw unavailable(`${what} timed out`);
          this.#cork();
          return fn(call);
        });
      }
      work.then(
        (value) => {
          if (deadlines.settle(call)) resolve(value);
        },
        (error: unknown) => {
          if (deadlines.settle(call)) reject(translate(error, what));
        },
      );
    });
  }

  /**
   * Coalesces the commands issued in one turn of the event loop into few socket writes. ioredis writes
   * each command at once, a syscall each on both sides. Under load one turn handles many sockets' reads
   * (HTTP requests, Redis replies), each a callback of its own that issues a command or two, so the
   * socket stays corked until the turn's check phase (setImmediate) rather than until the end of the
   * current callback (nextTick): the turn's commands then go out in writes of `CORK_BATCH`, far fewer
   * syscalls, and Redis works on one batch while this process issues the next. Nothing waits past the
   * current turn, which does not block in poll while an immediate is pending. Standalone clients only: a
   * Cluster spreads commands over its nodes, whose sockets are its own business.
   */
  #cork(): void {
    const corked = this.#corked;
    if (corked !== undefined) {
      if (++this.#batched < CORK_BATCH) return;
      this.#batched = 0;
      corked.uncork();
      corked.cork();
      return;
    }
    this.#batched = 0;
    const stream = (this.#client as { stream?: Partial<Writable> }).stream;
    if (typeof stream?.cork !== "function" || typeof stream.uncork !== "function") return;
    stream.cork();
    this.#corked = stream as Writable;
    setImmediate(this.#uncork);
  }

  readonly #uncork = (): void => {
    const stream = this.#corked;
    this.#corked = undefined;
    stream?.uncork();
  };

  #script(lua: LuaScript, keys: string[], args: (string | number)[]): Promise<unknown> {
    return runScript(this.#client, lua, keys, args);
  }

  #indexAdd(userId: string, id: string, expiresAt: number): Promise<unknown> {
    return this.#script(INDEX_ADD, [this.#userKey(userId)], [expiresAt, id]);
  }

  async #indexRemove(userId: string, ids: string[]): Promise<void> {
    if (ids.length > 0) await this.#client.zrem(this.#userKey(userId), ...ids);
  }

  async insert(record: SessionRecord): Promise<void> {
    return this.#insert(record, undefined);
  }

  /** `insert` with attribute values given as JSON text, which become their fields as they are. */
  async insertEncoded(record: SessionRecord, encoded: Record<string, string>): Promise<void> {
    return this.#insert(record, encoded);
  }

  async #insert(record: SessionRecord, encoded: Record<string, string> | undefined): Promise<void> {
    const fields = recordFields(record, record.version, encoded);
    await this.#run("insert", async () => {
      const inserted = await this.#script(INSERT, this.#keysOf(record.id), [pexpireAt(record), ...fields]);
      if (inserted !== 1) throw duplicate();
      if (record.userId !== undefined) await this.#indexAdd(record.userId, record.id, record.expiresAt);
    });
  }

  get(id: string): Promise<StoredRecord | undefined> {
    return this.#run("get", () =>
      this.#client.hgetall(this.#key(id)).then((hash) => this.#found(id, hash, false)),
    );
  }

  /** Like `get`, but attribute values stay JSON text until the session reads them. */
  peek(id: string): Promise<PeekedRecord | undefined> {
    return this.#run("get", () =>
      this.#client.hgetall(this.#key(id)).then((hash) => this.#found(id, hash, true)),
    );
  }

  #found(
    id: string,
    hash: Record<string, string>,
    lazy: boolean,
  ): PeekedRecord | undefined | Promise<PeekedRecord | undefined> {
    const record = decodeRecord(id, hash, lazy);
    if (record) return expiryOf(record) > Date.now() ? record : undefined;
    const alias = decodeAlias(hash);
    if (!alias || alias.until <= Date.now()) return undefined;
    return this.#followAlias(id, alias, lazy);
  }

  /**
   * A second round trip only for an alias. A chain (renamed again within the grace window) is followed
   * a few hops; the first alias decides verifier and until, as the caller holds its token.
   */
  async #followAlias(id: string, alias: AliasFields, lazy: boolean): Promise<PeekedRecord | undefined> {
    let target = alias.target;
    for (let hop = 0; hop < ALIAS_HOPS; hop++) {
      const next = await this.#client.hgetall(this.#key(target));
      const found: PeekedRecord | undefined = decodeRecord(target, next, lazy);
      if (found) {
        if (expiryOf(found) <= Date.now()) return undefined;
        found.via = { from: id, verifier: alias.verifier, until: alias.until };
        return found;
      }
      const further = decodeAlias(next);
      if (!further) return undefined;
      target = further.target;
    }
    return undefined;
  }

  commit(id: string, delta: SessionDelta, options: CommitOptions = {}): Promise<number> {
    let encoded: EncodedDelta;
    try {
      encoded = encodeDelta(delta);
    } catch (error) {
      return Promise.reject(error);
    }
    const ifVersion = options.ifVersion === undefined ? "" : String(options.ifVersion);
    const key = this.#key(id);
    // Fast path (bench: redis-server work per request): the lean script when nothing touches the index.
    if (!encoded.indexed && encoded.unset.length === 0 && encoded.set.length <= PLAIN_MAX_VALUES) {
      const argv = [key, ifVersion, encoded.idle ?? ""];
      for (const arg of encoded.set) argv.push(arg);
      return this.#run("commit", () =>
        evalScript(this.#client, COMMIT_PLAIN, 1, argv).then((result) =>
          result === -3 ? this.#commitFull(id, key, ifVersion, encoded) : this.#committed(id, result),
        ),
      );
    }
    return this.#run("commit", () => this.#commitFull(id, key, ifVersion, encoded));
  }

  #commitFull(id: string, key: string, ifVersion: string, encoded: EncodedDelta): Promise<number> {
    const argv = [key, ifVersion, String(Date.now())];
    for (const arg of encoded.set) argv.push(arg);
    if (encoded.unset.length > 0) {
      argv.push("");
      for (const field of encoded.unset) argv.push(field);
    }
    return evalScript(this.#client, COMMIT, 1, argv).then((result) => this.#committed(id, result));
  }

  /** The version COMMIT replied, once the user index followed when `expiresAt` or `userId` changed. */
  #committed(id: string, result: unknown): number | Promise<number> {
    // A plain version unless one of those changed (an idle refresh alone never touches the index).
    if (typeof result === "number") {
      if (result < 0) throw statusError(-result);
      return result;
    }
    const [version, before, after, expiresAt] = reply(result);
    const oldUser = untag(before);
    const newUser = untag(after);
    return Promise.all([
      newUser === undefined ? undefined : this.#indexAdd(newUser, id, Number(expiresAt)),
      oldUser === undefined || oldUser === newUser ? undefined : this.#indexRemove(oldUser, [id]),
    ]).then(() => Number(version));
  }

  /**
   * Rename across slots. On Cluster the old and new keys live on different nodes (ids are random, so
   * they cannot share a hash tag), and no script may touch both. Three steps, each atomic on one key:
   *
   * 1. BEGIN on the old key: check existence and `ifVersion`, then mark the record with a random token
   *    and a deadline (`ren`, `renu`), and read its version and verifier.
   * 2. INSERT the new record (version old+1) under the new key; it fails if the new id is taken.
   * 3. FINISH on the old key, the commit point: only if our token is still there, replace the record by
   *    the alias (or delete it when graceMs is 0).
   *
   * Why nothing acknowledged is lost: while the mark is live, COMMIT refuses with VERSION_CONFLICT, so
   * no write can land on the old record after BEGIN read it; the caller reloads, which follows the alias
   * once FINISH ran, and writes to the new id. CONSUME treats a marked record as already gone (the id is
   * being retired; consume never follows aliases). A crashed or stalled renamer cannot wedge a session:
   * past the deadline the mark is void, the next commit clears it, and FINISH (which checks the token,
   * not the clock) then fails and the renamer deletes the new record: the rename was never acknowledged,
   * and the commit is kept. A delete, consume or deleteByUser of the old id between the steps also makes
   * FINISH fail (SESSION_ENDED), so a revoked session cannot come back under its new id. Clocks only
   * decide when a stale mark may be voided, never whether data survives. Before step 3 the renamer checks
   * that its caller still waits, so a rename reported as timed out does not commit later. If FINISH's
   * reply itself is lost, the outcome is unknown (STORE_UNAVAILABLE) and both records are kept: at worst
   * an unreachable new record remains until its own expiry.
   */
  async rename(oldId: string, newRecord: SessionRecord, options: RenameOptions): Promise<number> {
    const oldKey = this.#key(oldId);
    const newKey = this.#key(newRecord.id);
    const token = randomBytes(12).toString("base64url");
    return this.#run("rename", async (call) => {
      const now = Date.now();
      const begun = reply(
        await this.#script(
          RENAME_BEGIN,
          [oldKey],
          [options.ifVersion ?? "", now, token, now + this.#markMs()],
        ),
      );
      if (begun[0] !== 0) throw statusError(begun[0]);
      const version = Number(begun[1]) + 1;
      const oldUser = untag(begun[3]);

      let finishing = false;
      try {
        const fields = recordFields(newRecord, version);
        const inserted = await this.#script(INSERT, this.#keysOf(newRecord.id), [
          pexpireAt(newRecord),
          ...fields,
        ]);
        if (inserted !== 1) throw duplicate();
        const indexed = newRecord.userId !== undefined;
        try {
          if (call.expired) throw unavailable("rename timed out");
          const until = options.graceMs > 0 ? Date.now() + options.graceMs : 0;
          finishing = true;
          const [finished] = await Promise.all([
            this.#script(RENAME_FINISH, this.#keysOf(oldId), [token, newRecord.id, until]),
            indexed ? this.#indexAdd(newRecord.userId!, newRecord.id, newRecord.expiresAt) : undefined,
          ]);
          if (finished !== 0) {
            finishing = false;
            throw statusError(finished);
          }
        } catch (error) {
          if (!finishing) await this.#quietly(this.#dropOrphan(newKey, indexed ? newRecord : undefined));
          throw error;
        }
      } catch (error) {
        if (!finishing) await this.#quietly(this.#script(RENAME_ABORT, [oldKey], [token]));
        throw error;
      }
      if (oldUser !== undefined) await this.#indexRemove(oldUser, [oldId]);
      return version;
    });
  }

  /** How long a rename mark holds: longer than any rename its caller still waits for. */
  #markMs(): number {
    return Math.max(2 * this.#timeoutMs, 1000);
  }

  async #dropOrphan(key: string, indexed: SessionRecord | undefined): Promise<void> {
    await this.#client.del(key);
    if (indexed?.userId !== undefined) await this.#indexRemove(indexed.userId, [indexed.id]);
  }

  async #quietly(work: Promise<unknown>): Promise<void> {
    await work.catch(noop);
  }

  async consume(id: string, check: (record: SessionRecord) => boolean): Promise<SessionRecord | undefined> {
    const key = this.#key(id);
    return this.#run("consume", async () => {
      for (let attempt = 0; attempt < CONSUME_ATTEMPTS; attempt++) {
        const hash = await this.#client.hgetall(key);
        const now = Date.now();
        if (hash.ren !== undefined && Number(hash.renu) > now) return undefined;
        const record = decodeRecord(id, hash);
        if (!record || expiryOf(record) <= now) return undefined;
        if (!check(record)) return undefined;
        const removed = await this.#script(CONSUME, this.#keysOf(id), [record.version, Date.now()]);
        if (removed === -1) return undefined;
        if (removed === 1) {
          if (record.userId !== undefined) await this.#indexRemove(record.userId, [id]);
          return decodeRecord(id, hash);
        }
      }
      throw stillChanging("consume");
    });
  }

  async delete(id: string): Promise<boolean> {
    return this.#run("delete", async () => {
      const result = reply(await this.#script(DELETE, this.#keysOf(id), []));
      const userId = untag(result[1]);
      if (userId !== undefined) await this.#indexRemove(userId, [id]);
      return result[0] === 1;
    });
  }

  async touch(id: string, idleExpiresAt: number): Promise<void> {
    await this.#run("touch", () => this.#script(TOUCH, [this.#key(id)], [idleExpiresAt]));
  }

  async #members(userId: string): Promise<string[]> {
    const members = await this.#script(USER_LIST, [this.#userKey(userId)], [Date.now()]);
    return reply(members).filter((m): m is string => typeof m === "string");
  }

  /**
   * SCAN over every master (each node of a Cluster in turn) for the session hashes (`{prefix}{<id>}`,
   * not their `:out`, `:lock` or index keys), then their fields in one pipeline per page. The only call
   * that scans: it is for operators' tools, not request paths.
   */
  async *scan(options: ScanOptions = {}): AsyncIterable<SessionRecord[]> {
    const count = scanBatch(options);
    const pattern = `${globEscape(this.#prefix)}{*}`;
    const nodes = this.#client instanceof Cluster ? this.#client.nodes("master") : [this.#client];
    for (const node of nodes) {
      let cursor = "0";
      do {
        const [next, keys] = await this.#run("scan", () =>
          node.scan(cursor, "MATCH", pattern, "COUNT", count),
        );
        cursor = next;
        const ids = keys
          .map((key) => key.slice(this.#prefix.length + 1, -1))
          .filter((id) => !id.includes("}"));
        if (ids.length === 0) continue;
        const hashes = await this.#run("scan", () =>
          Promise.all(ids.map((id) => this.#client.hgetall(this.#key(id)))),
        );
        const now = Date.now();
        const page: SessionRecord[] = [];
        ids.forEach((id, i) => {
          const record = decodeRecord(id, hashes[i]!);
          if (record && expiryOf(record) > now) page.push(record);
        });
        if (page.length > 0) yield page;
      } while (cursor !== "0");
    }
  }

  async listByUser(userId: string): Promise<SessionRecord[]> {
    return this.#run("listByUser", async () => {
      const members = await this.#members(userId);
      const hashes = await Promise.all(members.map((id) => this.#client.hgetall(this.#key(id))));
      const now = Date.now();
      const live: SessionRecord[] = [];
      const stale: string[] = [];
      members.forEach((id, i) => {
        const record = decodeRecord(id, hashes[i]!);
        if (!record || record.userId !== userId) stale.push(id);
        else if (expiryOf(record) > now) live.push(record);
      });
      await this.#indexRemove(userId, stale);
      return live;
    });
  }

  async deleteByUser(userId: string, options: { exceptId?: string } = {}): Promise<string[]> {
    return this.#run("deleteByUser", async () => {
      const targets = (await this.#members(userId)).filter((id) => id !== options.exceptId);
      const results = await Promise.all(
        targets.map((id) => this.#script(DELETE_IF_USER, this.#keysOf(id), [userId])),
      );
      await this.#indexRemove(userId, targets);
      return targets.filter((_, i) => results[i] === 1);
    });
  }

  /** Redis expires sessions, aliases, leases and user indexes natively: nothing to sweep. */
  async sweep(_now: number): Promise<number> {
    return 0;
  }

  async lock(id: string, leaseMs: number): Promise<StoreLock | null> {
    const lockKey = `${this.#key(id)}:lock`;
    const token = randomBytes(16).toString("base64url");
    const lease = Math.max(1, Math.ceil(leaseMs));
    const fence = await this.#run("lock", async () =>
      Number(await this.#script(LOCK, [lockKey, `${this.#key(id)}:fence`], [token, lease, Date.now(), DAY])),
    );
    if (!fence) return null;
    let released = false;
    return {
      fence,
      release: async () => {
        if (released) return;
        await this.#run("release", () => this.#script(UNLOCK, [lockKey], [token]));
        released = true;
      },
    };
  }

  async outboxAppend(id: string, messages: string[], limits: OutboxLimits): Promise<number> {
    if (messages.length === 0) return (await this.outboxRead(id, Number.MAX_SAFE_INTEGER)).last;
    const last = await this.#run("outboxAppend", async () =>
      Number(
        await this.#script(OUTBOX_APPEND, this.#keysOf(id), [
          limits.maxMessages,
          limits.maxBytes,
          ...messages,
        ]),
      ),
    );
    if (last < 0) throw ended();
    return last;
  }

  async outboxRead(id: string, after: number, limit = Number.MAX_SAFE_INTEGER): Promise<OutboxPage> {
    const out = (await this.#run("outboxRead", () =>
      this.#script(OUTBOX_READ, this.#keysOf(id), [after, Math.max(0, limit)]),
    )) as (string | number)[];
    const first = Number(out[2]);
    const messages = out.slice(3).map((data, i) => ({ seq: first + i, data: String(data) }));
    return { messages, last: Number(out[0]), droppedThrough: Number(out[1]) };
  }

  async outboxTrim(id: string, through: number): Promise<void> {
    const [, list, head] = this.#keysOf(id);
    await this.#run("outboxTrim", () => this.#script(OUTBOX_TRIM, [list!, head!], [through]));
  }

  async publish(event: StoreEvent): Promise<void> {
    const message = JSON.stringify({ s: this.#source, e: event });
    // On a Cluster, sharded pub/sub: the event goes to the shard that owns the channel's slot, not
    // over the cluster bus to every node.
    const client = this.#client;
    await this.#run("publish", () =>
      client instanceof Cluster
        ? client.spublish(this.#channel, message)
        : client.publish(this.#channel, message),
    );
    // Local listeners hear it at once; the echo from Redis is skipped by its source tag.
    this.#deliver(message);
  }

  async subscribe(listener: StoreEventListener): Promise<() => Promise<void>> {
    await this.#run("subscribe", () => this.#subscribed());
    const remove = this.#listeners.add(listener);
    return async () => remove();
  }

  #subscribed(): Promise<void> {
    if (!this.#subscriber) {
      // A connection of its own: a RESP2 subscriber can run nothing else. It queues while offline and
      // resubscribes after a reconnect. On a Cluster it is a sharded subscriber (SSUBSCRIBE on the master
      // that owns the channel's slot, followed when the slot moves).
      const sharded = this.#client instanceof Cluster;
      const subscriber =
        this.#client instanceof Cluster
          ? this.#client.duplicate([], {
              enableOfflineQueue: true,
              shardedSubscribers: true,
              redisOptions: { maxRetriesPerRequest: null },
            })
          : this.#client.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null });
      subscriber.on("error", noop);
      subscriber.on(sharded ? "smessage" : "message", (channel: string, message: string) => {
        if (channel === this.#channel) this.#deliver(message, true);
      });
      this.#subscriber = subscriber;
    }
    const subscriber = this.#subscriber;
    this.#subscribing ??= (
      subscriber instanceof Cluster
        ? subscriber.ssubscribe(this.#channel)
        : subscriber.subscribe(this.#channel)
    ).then(noop, (error: unknown) => {
      this.#subscribing = undefined;
      throw error;
    });
    return this.#subscribing;
  }

  #deliver(message: string, remote = false): void {
    if (this.#listeners.size === 0) return;
    const parsed = parseEvent(message);
    if (!parsed || (remote && parsed.source === this.#source)) return;
    this.#listeners.deliver(() => parseEvent(message)!.event);
  }

  /** Closes the subscriber connection and, when the store opened it, the client (QUIT, then disconnect). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    const clients = [this.#subscriber, this.#owned ? this.#client : undefined];
    await Promise.all(clients.map((client) => (client ? this.#quit(client) : undefined)));
  }

  async #quit(client: Redis | Cluster): Promise<void> {
    if (client.status === "ready") {
      let timer: NodeJS.Timeout | undefined;
      const limit = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.#timeoutMs);
      });
      await Promise.race([client.quit().then(noop, noop), limit]);
      clearTimeout(timer);
    }
    client.disconnect();
  }
}
