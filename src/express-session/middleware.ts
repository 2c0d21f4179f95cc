import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { TLSSocket } from "node:tls";
import type { SessionStore } from "../core/store.js";
import {
  type CheckedToken,
  equalText,
  issueToken,
  matchesVerifier,
  SECRET_LENGTH,
  TOKEN_LENGTH,
  TokenMemo,
  verifierOf,
} from "../core/tokens.js";
import { readCookie } from "../http/carriage.js";
import { type MigrateOptions, Migration } from "../http/migrate.js";
import { appendSetCookie, hookPrototype, sharedResponse, shareExpressHooks } from "../http/node.js";
import { type SigningSecret, sign, unsign } from "../http/signature.js";
import { Cookie, type CookieOptions } from "./cookie.js";
import { addGrant, type Grant, grantOf, holdState, type RequestState, stateOf, storedOf } from "./grants.js";
import { diff, differs, type Snapshot, snapshotOf } from "./properties.js";
import { Session, type SessionData, type SessionIncomingMessage, type Store } from "./session.js";
import { MemoryStore, StowageStore } from "./stowage-store.js";

/** The options of express-session, as stowage/express-session takes them. */
export interface SessionOptions {
  /**
   * On an express-session store, the secret that signs the cookie (an array: the first signs, all are
   * tried). On a stowage store nothing needs signing and the secret may be left out.
   */
  secret?: SigningSecret | SigningSecret[];
  /** The cookie's name. @default "connect.sid" */
  name?: string;
  /** The cookie's name, by its old express-session option name. @deprecated use `name` */
  key?: string;
  /** The cookie's settings, or a function of the request that gives them. */
  cookie?: CookieOptions | ((req: SessionIncomingMessage) => CookieOptions);
  /** Set the cookie on every response, renewing its expiry. @default false */
  rolling?: boolean;
  /** Store a new session that nothing was put in. @default true (express-session's default; false is better) */
  saveUninitialized?: boolean;
  /** Write an unchanged session back at the end of every request. @default true (express-session's default; false is better) */
  resave?: boolean;
  /** Names a new session's id. On a stowage store the token's secret is random whatever the id, so a guessable id cannot be used to sign in. */
  genid?: (req: SessionIncomingMessage) => string;
  /** Believe `X-Forwarded-Proto` (true), never (false), or follow express's `req.secure` (undefined). */
  proxy?: boolean;
  /** What `req.session = null` (or `delete req.session`) does: "destroy" ends the session, "keep" leaves it. @default "keep" */
  unset?: "destroy" | "keep";
  /**
   * Move the sessions of the express-session app this one replaces: a request whose cookie names no
   * session here but is a validly signed express-session cookie gets that session's properties in a new
   * session, once; the old record is destroyed after the new one is stored. Needs a stowage store.
   */
  migrate?: MigrateOptions;
  /** Where sessions go: a stowage store (MemoryStore, SqliteStore, RedisStore, PostgresStore) or an express-session store. @default a stowage MemoryStore */
  store?: Store | SessionStore;
}

/** A request as the middleware gets it from express or node:http. */
type Request = SessionIncomingMessage & {
  originalUrl?: string;
  secure?: boolean;
  cookies?: Record<string, string>;
  signedCookies?: Record<string, string | false>;
};

/**
 * A connect-style middleware, generic in its request and response so that it is an express
 * `RequestHandler` (and a connect or node:http one) without this package depending on express's types.
 */
export type SessionMiddleware = <Req extends IncomingMessage, Res extends ServerResponse>(
  req: Req,
  res: Res,
  next: (error?: unknown) => void,
) => void;

/**
 * express-session's middleware on stowage: `req.session` is a plain object loaded before the route runs,
 * with express-session's methods, and is written when the response ends. On a stowage store the cookie is
 * `s:` + id + `.` + a 32-byte random secret whose SHA-256 is all the store keeps, and a save writes only
 * the properties that changed (docs/express-session.md).
 *
 * @example
 * app.use(session({ store: new RedisStore({ url }), resave: false, saveUninitialized: false }));
 */
export function session(options: SessionOptions = {}): SessionMiddleware {
  const config = configure(options);
  const { store } = config;
  store.generate = (req) => generate(config, req);
  store.on("disconnect", () => {
    config.ready = false;
  });
  store.on("connect", () => {
    config.ready = true;
  });

  return function stowageSession(
    request: IncomingMessage,
    res: ServerResponse,
    next: (error?: unknown) => void,
  ) {
    const req = request as Request;
    if (req.session) {
      // Mounted again on this request's way (by a router, or by an app of another copy of express
      // called as a handler, which gives the response that copy's prototype): the first cycle stands.
      const cycle = stateOf(req);
      if (cycle instanceof Cycle && cycle.res === res) cycle.rebind();
      return next();
    }
    if (!config.ready) return next();
    const path = config.cookieOf(req).path;
    if (path !== undefined && path !== "/" && !pathnameOf(req).startsWith(path)) return next();
    const secrets = config.secrets ?? (req.secret ? [req.secret] : undefined);
    if (secrets === undefined && !config.hashed)
      return next(new Error("secret option required for sessions"));
    req.sessionStore = store;
    const presented = config.hashed ? readToken(config, req) : readSigned(req, config.name, secrets ?? []);
    const shared = sharedResponse(res);
    const cycle = new Cycle(config, req, res as HookedResponse, next, presented?.id, secrets ?? [], shared);
    req.sessionID = presented?.id;
    if (shared === undefined) cycle.hookOwn();
    holdState(req, cycle);
    if (presented === undefined) return cycle.fresh();
    store.get(presented.id, (error, data) => cycle.loaded(presented, error, data));
  };
}

/** The middleware's settings, checked once. */
interface Config {
  readonly store: Store;
  /** True on a stowage store: hashed `s:id.secret` cookies instead of signed sids. */
  readonly hashed: boolean;
  readonly name: string;
  readonly cookieOf: (req: SessionIncomingMessage) => CookieOptions;
  readonly customId: ((req: SessionIncomingMessage) => string) | undefined;
  readonly trustProxy: boolean | undefined;
  readonly resave: boolean;
  readonly rolling: boolean;
  readonly saveUninitialized: boolean;
  readonly unsetDestroy: boolean;
  readonly secrets: SigningSecret[] | undefined;
  readonly memo: TokenMemo;
  readonly migration: Migration | undefined;
  ready: boolean;
}

function configure(options: SessionOptions): Config {
  const cookie = options.cookie ?? {};
  const customId = options.genid;
  if (customId !== undefined && typeof customId !== "function") {
    throw new TypeError("genid option must be a function");
  }
  if (options.unset !== undefined && options.unset !== "destroy" && options.unset !== "keep") {
    throw new TypeError('unset option must be "destroy" or "keep"');
  }
  const secret = options.secret;
  if (Array.isArray(secret) && secret.length === 0) {
    throw new TypeError("secret option array must contain one or more strings");
  }
  const store = storeOf(options.store);
  const hashed = store instanceof StowageStore;
  if (options.migrate !== undefined && !hashed) {
    throw new TypeError(
      "migrate option needs a stowage store: an express-session store already has the old sessions",
    );
  }
  return {
    store,
    hashed,
    migration: options.migrate === undefined ? undefined : new Migration(options.migrate),
    name: options.name ?? options.key ?? "connect.sid",
    cookieOf: typeof cookie === "function" ? cookie : () => cookie,
    customId,
    trustProxy: options.proxy,
    resave: options.resave ?? true,
    rolling: Boolean(options.rolling),
    saveUninitialized: options.saveUninitialized ?? true,
    unsetDestroy: options.unset === "destroy",
    secrets: secret === undefined || secret === "" ? undefined : Array.isArray(secret) ? secret : [secret],
    memo: new TokenMemo(),
    ready: true,
  };
}

/** Puts a new session on the request (`store.generate`): a new id and, on a stowage store, a new secret. */
function generate(config: Config, req: SessionIncomingMessage): void {
  let id: string;
  if (config.hashed) {
    const issued = issueToken();
    id = config.customId === undefined ? issued.id : config.customId(req);
    addGrant(req, {
      id,
      secret: tokenSecret(issued.token),
      verifier: issued.verifier,
      stored: undefined,
    });
  } else {
    id = config.customId === undefined ? randomBytes(24).toString("base64url") : config.customId(req);
  }
  req.sessionID = id;
  const session = new Session(req);
  const resolved = config.cookieOf(req);
  session.cookie = new Cookie(resolved);
  const secure = isSecure(req as Request, config.trustProxy);
  if (resolved.secure === "auto") session.cookie.secure = secure;
  if (resolved.sameSite === "auto") session.cookie.sameSite = secure ? "none" : "lax";
  req.session = session;
}

const CYCLE = Symbol("stowage.express-session");

type HookedResponse = ServerResponse & { [CYCLE]: Cycle; _implicitHeader(): void };

/** A presented cookie: the session id and, on a stowage store, the token checked against the record. */
interface Presented {
  id: string;
  token?: CheckedToken | undefined;
  secret?: string | undefined;
}

/**
 * One request's session, from the cookie to the end of the response: whether it changed, whether it was
 * saved, and what to write as the response ends (express-session's rules, option by option).
 */
class Cycle implements RequestState {
  readonly grants: Grant[] = [];
  originalId: string | undefined;
  original: Snapshot | undefined;
  saved: Snapshot | undefined;
  touched = false;
  /** The express-session sid whose session this request moved over, to destroy once the new one is stored. */
  moved: string | undefined;
  headersDone = false;
  ended = false;
  realEnd: (...args: unknown[]) => ServerResponse;
  realWriteHead: (...args: unknown[]) => ServerResponse;
  /** Hooked through express's shared response object rather than the response's own properties (see `attachToExpress`). */
  shared: boolean;

  constructor(
    readonly config: Config,
    readonly req: Request,
    readonly res: HookedResponse,
    readonly next: (error?: unknown) => void,
    readonly cookieId: string | undefined,
    readonly secrets: readonly SigningSecret[],
    // What a shared hook ends through (node's own `end` and `writeHead`), read now so that a later patch
    // of node's is still honoured.
    shared: ServerResponse | undefined,
  ) {
    this.shared = shared !== undefined;
    this.realEnd = (shared ?? res).end as (...args: unknown[]) => ServerResponse;
    this.realWriteHead = (shared ?? res).writeHead as (...args: unknown[]) => ServerResponse;
  }

  /** Hooks `end` and `writeHead` on the response itself, inside whatever wrapped them before. */
  hookOwn(): void {
    const res: ServerResponse = this.res;
    this.res[CYCLE] = this;
    res.writeHead = hookedWriteHead as ServerResponse["writeHead"];
    res.end = hookedEnd as ServerResponse["end"];
  }

  /** A shared hook whose response has moved to another copy of express's prototype follows it there. */
  rebind(): void {
    if (!this.shared || this.ended || hookPrototype(this.res)) return;
    this.shared = false;
    this.realEnd = this.res.end as (...args: unknown[]) => ServerResponse;
    this.realWriteHead = this.res.writeHead as (...args: unknown[]) => ServerResponse;
    this.hookOwn();
  }

  /** A request with no session: a new one, or the old express-session one its cookie names, moved over. */
  fresh(): void {
    const migration = this.config.migration;
    const old = migration === undefined ? undefined : readCookie(this.req.headers.cookie, migration.name);
    if (migration === undefined || old === undefined) {
      this.generate();
      this.next();
      return;
    }
    migration.read(old, Date.now()).then(
      (found) => {
        this.generate();
        if (found === undefined) {
          this.next();
          return;
        }
        const session = this.req.session as Session;
        for (const [key, value] of Object.entries(found.properties))
          if (!(key in session)) session[key] = value;
        this.moved = found.sid;
        this.next();
      },
      (error: unknown) => this.next(error),
    );
  }

  generate(): void {
    this.config.store.generate?.(this.req);
    this.originalId = this.req.sessionID;
    this.original = snapshotOf(this.req.session as Session, "cookie");
  }

  /** The store's answer for the presented cookie: the session, or a new one when it names none. */
  loaded(presented: Presented, error: unknown, data: SessionData | null | undefined): void {
    if (error && (error as { code?: unknown }).code !== "ENOENT") {
      this.next(error);
      return;
    }
    try {
      if (error || !data || (this.config.hashed && !admit(this.req, presented, data))) {
        this.fresh();
        return;
      } else {
        this.config.store.createSession(this.req, data);
        this.originalId = this.req.sessionID;
        this.original = storedOf(data)?.snapshot ?? snapshotOf(this.req.session as Session, "cookie");
        if (!this.config.resave) this.saved = this.original;
      }
    } catch (failure) {
      this.next(failure);
      return;
    }
    this.next();
  }

  saving(session: object): void {
    this.saved = diff(session, this.saved ?? this.original ?? new Map(), "cookie").now;
  }

  isModified(session: Session): boolean {
    return this.originalId !== session.id || differs(session, this.original, "cookie");
  }

  isSaved(session: Session): boolean {
    return (
      this.originalId === session.id && this.saved !== undefined && !differs(session, this.saved, "cookie")
    );
  }

  shouldSave(session: Session): boolean {
    if (typeof this.req.sessionID !== "string") return false;
    return !this.config.saveUninitialized && this.saved === undefined && this.cookieId !== this.req.sessionID
      ? this.isModified(session)
      : !this.isSaved(session);
  }

  shouldTouch(session: Session): boolean {
    return (
      typeof this.req.sessionID === "string" &&
      this.cookieId === this.req.sessionID &&
      !this.shouldSave(session)
    );
  }

  shouldSetCookie(session: Session): boolean {
    if (typeof this.req.sessionID !== "string") return false;
    return this.cookieId !== this.req.sessionID
      ? this.config.saveUninitialized || this.isModified(session)
      : this.config.rolling || (session.cookie.expires != null && this.isModified(session));
  }

  /** Just before the headers go out: the Set-Cookie, when express-session would send one. */
  beforeHeaders(): void {
    const { req, config } = this;
    const session = req.session;
    if (!session || !this.shouldSetCookie(session)) return;
    if (session.cookie.secure && !isSecure(req, config.trustProxy)) return;
    this.touch(session);
    const sid = req.sessionID as string;
    let value: string;
    if (config.hashed) {
      const grant = grantOf(req, sid);
      if (grant === undefined) return;
      value = `s:${sid}.${grant.secret}`;
    } else {
      value = `s:${sign(sid, this.secrets[0]!)}`;
    }
    try {
      appendSetCookie(this.res, Cookie.prototype.serialize.call(session.cookie, config.name, value));
    } catch (error) {
      setImmediate(this.next, error);
    }
  }

  touch(session: Session): void {
    if (this.touched) return;
    session.touch();
    this.touched = true;
  }

  writeHead(args: unknown[]): ServerResponse {
    const res = this.res;
    if (this.headersDone) return this.realWriteHead.apply(res, args);
    this.headersDone = true;
    // Headers given to writeHead are set first, so the Set-Cookie adds to them instead of being
    // overwritten by them.
    const statusCode = args[0] as number;
    const message = typeof args[1] === "string" ? args[1] : undefined;
    const headers = message === undefined ? args[1] : args[2];
    res.statusCode = statusCode;
    if (Array.isArray(headers)) {
      for (let i = 0; i + 1 < headers.length; i += 2)
        res.appendHeader(String(headers[i]), headers[i + 1] as string);
    } else if (headers !== null && typeof headers === "object") {
      for (const [key, value] of Object.entries(headers))
        if (value !== undefined) res.setHeader(key, value as string);
    }
    this.beforeHeaders();
    return message === undefined
      ? this.realWriteHead.call(res, res.statusCode)
      : this.realWriteHead.call(res, res.statusCode, message);
  }

  end(args: unknown[]): ServerResponse {
    const res = this.res;
    if (this.ended) return false as unknown as ServerResponse;
    this.ended = true;
    const { req, config } = this;
    // The response ends once the store has answered: at once when it answered synchronously.
    let result: ServerResponse | undefined;
    const finish = (error?: unknown) => {
      if (error) setImmediate(this.next, error);
      else if (this.moved !== undefined && req.session) config.migration?.destroy(this.moved);
      result = this.realEnd.apply(res, args);
    };
    const session = req.session;
    if (req.sessionID && config.unsetDestroy && session == null) {
      config.store.destroy(req.sessionID, finish);
    } else if (!session) {
      return this.realEnd.apply(res, args);
    } else {
      this.touch(session);
      if (this.shouldSave(session)) session.save(finish);
      else if (typeof config.store.touch === "function" && this.shouldTouch(session)) {
        config.store.touch(req.sessionID as string, session as SessionData, finish);
      } else return this.realEnd.apply(res, args);
    }
    if (result !== undefined) return result;
    // The store answers later: the headers are fixed now (as a sent response's are: setting one throws),
    // and the whole response goes out in one write once the store has answered, so the client never sees
    // it end before its session is stored.
    if (!res.headersSent) res._implicitHeader();
    return res;
  }
}

// An express response hooked through the shared response object (no property of stowage's on it, see
// `attachToExpress`) finds its cycle as its request's state.
shareExpressHooks((res) => {
  const cycle = stateOf(res.req);
  return cycle instanceof Cycle && cycle.shared && cycle.res === res ? cycle : undefined;
});

// Shared functions that find their request's cycle through CYCLE: no closures to build per request.
function hookedEnd(this: HookedResponse, ...args: unknown[]): ServerResponse {
  return this[CYCLE].end(args);
}

function hookedWriteHead(this: HookedResponse, ...args: unknown[]): ServerResponse {
  return this[CYCLE].writeHead(args);
}

function storeOf(store: Store | SessionStore | undefined): Store {
  if (store === undefined) return new MemoryStore();
  if (store instanceof StowageStore) return store;
  const candidate = store as Partial<Store & SessionStore>;
  if (
    typeof candidate.insert === "function" &&
    typeof candidate.commit === "function" &&
    typeof candidate.scan === "function"
  ) {
    return new StowageStore(store as SessionStore);
  }
  if (
    typeof candidate.get === "function" &&
    typeof candidate.set === "function" &&
    typeof candidate.destroy === "function"
  ) {
    if (typeof candidate.createSession !== "function" || typeof candidate.regenerate !== "function") {
      throw new TypeError("store must extend the Store of stowage/express-session or express-session");
    }
    return store as Store;
  }
  throw new TypeError("store must be a stowage store or an express-session store");
}

/** Checks the cookie's secret against the stored verifier (constant-time) and takes the grant. */
function admit(req: Request, presented: Presented, data: SessionData): boolean {
  const stored = storedOf(data);
  if (stored === undefined) return false;
  const { token, secret } = presented;
  const good =
    token !== undefined
      ? matchesVerifier(token, stored.verifier)
      : secret !== undefined && equalText(verifierOf(secret), stored.verifier);
  if (!good) return false;
  addGrant(req, {
    id: presented.id,
    secret: token?.secret ?? (secret as string),
    verifier: stored.verifier,
    stored: stored.snapshot,
  });
  return true;
}

/**
 * The id and secret of a stowage cookie (`s:id.secret`); anything else is none. A cookie with a stowage id
 * goes through the token memo, so a keep-alive connection that sends it again is not hashed again.
 */
function readToken(config: Config, req: Request): Presented | undefined {
  const value = readCookie(req.headers.cookie, config.name) ?? req.cookies?.[config.name];
  if (typeof value !== "string" || !value.startsWith("s:")) return undefined;
  if (value.length === TOKEN_LENGTH + 2) {
    const token = config.memo.check(value.slice(2), req.socket);
    if (token !== null) return { id: token.id, token };
  }
  const dot = value.lastIndexOf(".");
  const secret = value.slice(dot + 1);
  if (dot <= 2 || secret.length !== SECRET_LENGTH || !/^[A-Za-z0-9_-]+$/.test(secret)) return undefined;
  return { id: value.slice(2, dot), secret };
}

/** The sid of an express-session cookie signed with one of `secrets`. */
function readSigned(
  req: Request,
  name: string,
  secrets: readonly SigningSecret[],
): { id: string; secret?: undefined } | undefined {
  let id: string | undefined;
  const raw = readCookie(req.headers.cookie, name);
  if (raw?.startsWith("s:")) id = unsign(raw.slice(2), secrets);
  if (id === undefined) {
    const signed = req.signedCookies?.[name];
    if (typeof signed === "string" && signed !== "") id = signed;
  }
  if (id === undefined) {
    const parsed = req.cookies?.[name];
    if (parsed?.startsWith("s:")) id = unsign(parsed.slice(2), secrets);
  }
  return id === undefined ? undefined : { id };
}

function tokenSecret(token: string): string {
  return token.slice(token.indexOf(".") + 1);
}

function isSecure(req: Request, trustProxy: boolean | undefined): boolean {
  if ((req.socket as TLSSocket | undefined)?.encrypted) return true;
  if (trustProxy === false) return false;
  if (trustProxy !== true) return req.secure === true;
  const header = req.headers["x-forwarded-proto"];
  const value = (Array.isArray(header) ? header[0] : header) ?? "";
  const comma = value.indexOf(",");
  return (comma === -1 ? value : value.slice(0, comma)).trim().toLowerCase() === "https";
}

function pathnameOf(req: Request): string {
  const url = req.originalUrl ?? req.url ?? "/";
  if (url.startsWith("/")) {
    const end = url.search(/[?#]/);
    return end === -1 ? url : url.slice(0, end);
  }
  try {
    return new URL(url).pathname;
  } catch {
    return "/";
  }
}
