import { randomBytes } from "node:crypto";
import type { ServerResponse } from "node:http";
import type { TLSSocket } from "node:tls";
import type { SessionStore } from "../core/store.js";
import { equalText, issueToken, SECRET_LENGTH, verifierOf } from "../core/tokens.js";
import { readCookie } from "../http/carriage.js";
import { appendSetCookie } from "../http/node.js";
import { type SigningSecret, sign, unsign } from "../http/signature.js";
import { Cookie, type CookieOptions } from "./cookie.js";
import { cycles, grantOf, grantsOf, STORED, type StoredTexts } from "./grants.js";
import type { SessionData, Store } from "./session.js";
import { Session, type SessionIncomingMessage } from "./session.js";
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

/** A connect-style middleware. */
export type SessionMiddleware = (
  req: SessionIncomingMessage,
  res: ServerResponse,
  next: (error?: unknown) => void,
) => void;

type Response = ServerResponse & { _implicitHeader(): void };

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
  const cookieOptions = options.cookie ?? {};
  const customId = options.genid;
  if (customId !== undefined && typeof customId !== "function")
    throw new TypeError("genid option must be a function");
  const name = options.name ?? (options as { key?: string }).key ?? "connect.sid";
  const store = storeOf(options.store);
  const hashed = store instanceof StowageStore;
  const trustProxy = options.proxy;
  const resave = options.resave ?? true;
  const rolling = Boolean(options.rolling);
  const saveUninitialized = options.saveUninitialized ?? true;
  if (options.unset !== undefined && options.unset !== "destroy" && options.unset !== "keep") {
    throw new TypeError('unset option must be "destroy" or "keep"');
  }
  const unsetDestroy = options.unset === "destroy";
  const secret = options.secret;
  if (Array.isArray(secret) && secret.length === 0) {
    throw new TypeError("secret option array must contain one or more strings");
  }
  const configured =
    secret === undefined || secret === "" ? undefined : Array.isArray(secret) ? secret : [secret];

  store.generate = (req) => {
    let id: string;
    if (hashed) {
      const issued = issueToken();
      id = customId === undefined ? issued.id : customId(req);
      grantsOf(req).set(id, {
        secret: tokenSecret(issued.token),
        verifier: issued.verifier,
        stored: undefined,
      });
    } else {
      id = customId === undefined ? randomBytes(24).toString("base64url") : customId(req);
    }
    req.sessionID = id;
    const session = new Session(req);
    const resolved = typeof cookieOptions === "function" ? cookieOptions(req) : cookieOptions;
    session.cookie = new Cookie(resolved);
    const secure = isSecure(req, trustProxy);
    if (resolved.secure === "auto") session.cookie.secure = secure;
    if (resolved.sameSite === "auto") session.cookie.sameSite = secure ? "none" : "lax";
    req.session = session;
  };

  let ready = true;
  store.on("disconnect", () => {
    ready = false;
  });
  store.on("connect", () => {
    ready = true;
  });

  return function stowageSession(request, res, next) {
    const req = request as Request;
    if (req.session) return next();
    if (!ready) return next();
    const resolved = typeof cookieOptions === "function" ? cookieOptions(req) : cookieOptions;
    if (!pathnameOf(req).startsWith(resolved.path ?? "/")) return next();
    const secrets = configured ?? (req.secret ? [req.secret] : undefined);
    if (secrets === undefined && !hashed) return next(new Error("secret option required for sessions"));

    let originalId: string | undefined;
    let originalPrint: string | undefined;
    let savedPrint: string | undefined;
    let touched = false;
    req.sessionStore = store;
    const presented = hashed ? readToken(req, name) : readSigned(req, name, secrets ?? []);
    const cookieId = presented?.id;
    req.sessionID = cookieId;

    const isModified = (session: Session) =>
      originalId !== session.id || originalPrint !== fingerprint(session);
    const isSaved = (session: Session) => originalId === session.id && savedPrint === fingerprint(session);
    const shouldSave = (session: Session) => {
      if (typeof req.sessionID !== "string") return false;
      return !saveUninitialized && savedPrint === undefined && cookieId !== req.sessionID
        ? isModified(session)
        : !isSaved(session);
    };
    const shouldTouch = (session: Session) =>
      typeof req.sessionID === "string" && cookieId === req.sessionID && !shouldSave(session);
    const shouldSetCookie = (session: Session) => {
      if (typeof req.sessionID !== "string") return false;
      return cookieId !== req.sessionID
        ? saveUninitialized || isModified(session)
        : rolling || (session.cookie.expires != null && isModified(session));
    };

    cycles.set(req, (session) => {
      savedPrint = fingerprint(session as Session);
    });

    beforeHeaders(res, () => {
      const session = req.session;
      if (!session || !shouldSetCookie(session)) return;
      if (session.cookie.secure && !isSecure(req, trustProxy)) return;
      if (!touched) {
        session.touch();
        touched = true;
      }
      const sid = req.sessionID as string;
      let value: string;
      if (hashed) {
        const grant = grantOf(req, sid);
        if (grant === undefined) return;
        value = `s:${sid}.${grant.secret}`;
      } else {
        value = `s:${sign(sid, (secrets as SigningSecret[])[0]!)}`;
      }
      try {
        appendSetCookie(res, Cookie.prototype.serialize.call(session.cookie, name, value));
      } catch (error) {
        setImmediate(next, error);
      }
    });

    const realEnd = res.end as (...args: unknown[]) => ServerResponse;
    const realWrite = res.write as (...args: unknown[]) => boolean;
    let ended = false;
    res.end = function end(this: ServerResponse, ...args: unknown[]) {
      if (ended) return false as unknown as ServerResponse;
      ended = true;
      let [chunk, encoding] = args as [unknown, BufferEncoding | undefined];
      if (typeof chunk === "function") chunk = undefined;
      if (typeof encoding === "function") encoding = undefined;
      // After the store answers: the rest of the body (all of it when the store answered at once).
      let sync = true;
      let result: unknown;
      const finish = (error?: unknown) => {
        if (error) setImmediate(next, error);
        if (sync) {
          result = realEnd.call(res, chunk, encoding);
          sync = false;
        } else {
          realEnd.call(res);
        }
      };
      const session = req.session;
      if (req.sessionID && unsetDestroy && session == null) {
        store.destroy(req.sessionID, finish);
      } else if (!session) {
        return realEnd.call(res, chunk, encoding);
      } else {
        if (!touched) {
          session.touch();
          touched = true;
        }
        if (shouldSave(session)) session.save(finish);
        else if (typeof store.touch === "function" && shouldTouch(session))
          store.touch(req.sessionID as string, session as SessionData, finish);
        else return realEnd.call(res, chunk, encoding);
      }
      if (!sync) return result as ServerResponse;
      // While the store works, the headers and all of the body but its last byte go out, so a slow store
      // delays only the end of the response.
      if (!res.headersSent) (res as Response)._implicitHeader();
      if (chunk === null || chunk === undefined) return true as unknown as ServerResponse;
      const length = Number(res.getHeader("content-length"));
      if (!Number.isNaN(length) && length > 0) {
        const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string, encoding);
        encoding = undefined;
        if (bytes.length !== 0) {
          // The last byte is held for the end, so the response cannot complete before the store answers.
          chunk = bytes.subarray(bytes.length - 1);
          return realWrite.call(res, bytes.subarray(0, bytes.length - 1)) as unknown as ServerResponse;
        }
        chunk = bytes;
      }
      const wrote = realWrite.call(res, chunk, encoding);
      sync = false;
      return wrote as unknown as ServerResponse;
    } as ServerResponse["end"];

    const generate = () => {
      store.generate?.(req);
      originalId = req.sessionID;
      originalPrint = fingerprint(req.session as Session);
    };

    if (cookieId === undefined) {
      generate();
      return next();
    }
    store.get(cookieId, (error, data) => {
      if (error && (error as { code?: unknown }).code !== "ENOENT") return next(error);
      try {
        const verified = !error && data && (!hashed || admit(req, cookieId, presented?.secret, data));
        if (!verified) {
          generate();
        } else {
          store.createSession(req, data);
          originalId = req.sessionID;
          originalPrint = fingerprint(req.session as Session);
          if (!resave) savedPrint = originalPrint;
        }
      } catch (failure) {
        return next(failure);
      }
      next();
    });
  };
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
function admit(req: Request, sid: string, secret: string | undefined, data: SessionData): boolean {
  const stored = (data as { [STORED]?: StoredTexts })[STORED];
  if (secret === undefined || stored === undefined || !equalText(verifierOf(secret), stored.verifier))
    return false;
  grantsOf(req).set(sid, { secret, verifier: stored.verifier, stored: stored.texts });
  return true;
}

/** The id and secret of a stowage cookie (`s:id.secret`); anything else is none. */
function readToken(req: Request, name: string): { id: string; secret: string } | undefined {
  const value = readCookie(req.headers.cookie, name) ?? req.cookies?.[name];
  if (typeof value !== "string" || !value.startsWith("s:")) return undefined;
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

/** The session's properties as one JSON text, its cookie left out: what "modified" and "saved" compare. */
function fingerprint(session: Session): string {
  return JSON.stringify(session, function (this: unknown, key, value) {
    return this === session && key === "cookie" ? undefined : value;
  });
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

/**
 * Runs `listener` once, just before the response's headers are written (an explicit writeHead, or the
 * implicit one of the first write or end). Headers given to writeHead are set first, so the listener
 * adds to them instead of being overwritten by them.
 */
function beforeHeaders(res: ServerResponse, listener: () => void): void {
  const realWriteHead = res.writeHead as (...args: unknown[]) => ServerResponse;
  let fired = false;
  res.writeHead = function writeHead(this: ServerResponse, statusCode: number, ...rest: unknown[]) {
    if (!fired) {
      fired = true;
      const message = typeof rest[0] === "string" ? (rest.shift() as string) : undefined;
      const headers = rest[0];
      res.statusCode = statusCode;
      if (Array.isArray(headers)) {
        for (let i = 0; i + 1 < headers.length; i += 2)
          res.appendHeader(String(headers[i]), headers[i + 1] as string);
      } else if (headers !== null && typeof headers === "object") {
        for (const [key, value] of Object.entries(headers))
          if (value !== undefined) res.setHeader(key, value as string);
      }
      listener();
      return message === undefined
        ? realWriteHead.call(res, res.statusCode)
        : realWriteHead.call(res, res.statusCode, message);
    }
    return realWriteHead.call(res, statusCode, ...rest);
  } as ServerResponse["writeHead"];
}
