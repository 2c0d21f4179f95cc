import { type IncomingMessage, ServerResponse } from "node:http";
import type { TLSSocket } from "node:tls";
import { StowageError } from "../core/errors.js";
import type { Sessions } from "../core/manager.js";
import { Carriage, type HttpSessionOptions } from "./carriage.js";
import {
  commitSession,
  commitSessionNow,
  cookieFor,
  isUnavailable,
  LazySession,
  openSession,
  type ResponseBinding,
  UNAVAILABLE_BODY,
} from "./core.js";

/** Options for `withSessions`. */
export interface NodeSessionOptions extends HttpSessionOptions {
  /** Told about errors that end a request: handler failures (answered 500) and store outages (503). @default console.error */
  onError?: (error: unknown) => void;
}

/** A node:http handler that gets the request's lazy session. */
export type NodeSessionHandler<A extends object> = (
  req: IncomingMessage,
  res: ServerResponse,
  session: LazySession<A>,
) => unknown;

/**
 * Wraps a node:http handler so it gets a lazy session, committed when the response ends and before its
 * headers go out, so a new or rotated token reaches the client. A store outage becomes a 503, a handler
 * error a 500; neither escapes to the server.
 *
 * @example
 * const server = createServer(withSessions(sessions, async (req, res, session) => {
 *   const s = await session;
 *   s.set("visits", (s.get("visits") ?? 0) + 1);
 *   res.end(`visits: ${s.get("visits")}`);
 * }));
 */
export function withSessions<A extends object>(
  sessions: Sessions<A>,
  handler: NodeSessionHandler<A>,
  options: NodeSessionOptions = {},
): (req: IncomingMessage, res: ServerResponse) => void {
  const carriage = new Carriage(options, ["onError"]);
  return (req, res) => {
    const { lazy, fail } = attachSession(sessions, carriage, req, res, { onError: options.onError });
    try {
      const result = handler(req, res, lazy);
      if (isThenable(result)) result.then(undefined, fail);
    } catch (error) {
      fail(error);
    }
  };
}

/** What `attachSession` gives the caller: the lazy session and the way to end a failed request. */
export interface AttachedSession<A extends object> {
  /** The request's lazy session. */
  lazy: LazySession<A>;
  /** Ends the request for a handler error: 503 for a store outage, 500 otherwise; no commit. */
  fail: (error: unknown) => void;
}

/** Options of `attachSession`. */
export interface AttachOptions {
  /** Told about errors that end the request (see `NodeSessionOptions.onError`). @default console.error */
  onError?: ((error: unknown) => void) | undefined;
  /**
   * Whether the request came over TLS, as the framework judges it (express's `req.secure`, which follows
   * its "trust proxy" setting). @default the socket's own answer (`req.socket.encrypted`)
   */
  tls?: boolean;
  /** See `LazySessionOptions.onLoadError`. @default undefined */
  onLoadError?: (error: unknown) => void;
}

/**
 * Opens a request's lazy session and hooks the response so the session is committed when it ends.
 * `end` is held back until the commit finishes, then the Set-Cookie is added. If the handler sent the
 * headers early (`writeHead`, `write`, a pipe), the cookie for the token known then goes with them and
 * the commit skips routine rotation, whose new token could no longer reach the client. Throws
 * CONFIG_INVALID when the response already has a stowage session attached.
 */
export function attachSession<A extends object>(
  sessions: Sessions<A>,
  carriage: Carriage,
  req: IncomingMessage,
  res: ServerResponse,
  options: AttachOptions = {},
): AttachedSession<A> {
  if (hookOf(res) !== undefined) {
    throw new StowageError("CONFIG_INVALID", "this response already has a stowage session attached");
  }
  const hook = openHook(sessions, carriage, req, res, options, undefined);
  hookOwn(hook);
  return hook;
}

/**
 * `attachSession` for express, which also puts the lazy session on `req.session` (read-only: the
 * response's hook finds its session there). An express response gets its app's prototype, whose own
 * prototype is the response object its copy of express shares among all its apps and sub-apps; the
 * hooks go there, once, rather than onto each response. The caller has made sure `attachedHook(res)` is
 * undefined.
 *
 * Fast path: V8 gives every express response a map of its own (express swaps its prototype), so each
 * property added to one builds a new map: three hook properties cost 4.8 KB of garbage and about a
 * tenth of a request's CPU with a 1 KB session (docs/internals.md, bench row "express server CPU per
 * request"). A response whose `end` or `writeHead` something before stowage has wrapped, or that is not
 * express's, is hooked on its own properties instead.
 */
export function attachToExpress<A extends object>(
  sessions: Sessions<A>,
  carriage: Carriage,
  req: IncomingMessage,
  res: ServerResponse,
  options: AttachOptions,
): AttachedSession<A> {
  const shared = sharedResponse(res);
  const hook = openHook(sessions, carriage, req, res, options, shared);
  Object.defineProperty(req, "session", { value: hook.lazy, enumerable: true });
  if (shared === undefined) hookOwn(hook);
  return hook;
}

/** The hook already attached to this response, if any: its manager, and the way to follow the response to another prototype. */
export function attachedHook(res: ServerResponse): { sessions: object; rebind(): void } | undefined {
  return hookOf(res);
}

function openHook<A extends object>(
  sessions: Sessions<A>,
  carriage: Carriage,
  req: IncomingMessage,
  res: ServerResponse,
  options: AttachOptions,
  shared: ServerResponse | undefined,
): ResponseHook<A> {
  const secure = carriage.isSecure(
    options.tls ?? (req.socket as TLSSocket).encrypted === true,
    carriage.trustsProxy ? rawHeader(req, "x-forwarded-proto") : undefined,
  );
  const lazy = openSession<A>(sessions, carriage, {
    cookie: rawHeader(req, "cookie"),
    header: carriage.header === undefined ? undefined : rawHeader(req, carriage.header),
    secure,
    connection: req.socket,
    onLoadError: options.onLoadError,
  });
  const hook = new ResponseHook(
    sessions,
    carriage,
    lazy,
    secure,
    res,
    options.onError ?? defaultReport,
    shared,
  );
  lazy.response = hook;
  return hook;
}

/**
 * Shared functions that find their request through HOOK: no closures to build per request. The hooks
 * stay in place once the response is done: a wrapper installed after them (compression) still calls them.
 */
function hookOwn<A extends object>(hook: ResponseHook<A>): void {
  const res = hook.res as HookedResponse;
  res[HOOK] = hook as unknown as ResponseHook<object>;
  res.writeHead = hookedWriteHead as ServerResponse["writeHead"];
  res.end = hookedEnd as ServerResponse["end"];
}

const HOOK = Symbol("stowage.response");

interface HookedResponse extends ServerResponse {
  [HOOK]?: ResponseHook<object>;
}

function hookOf(res: ServerResponse): ResponseHook<object> | undefined {
  return (res as HookedResponse)[HOOK] ?? sharedHook(res);
}

/**
 * What a response hooked through the shared prototype ends through (node's own `end` and `writeHead`),
 * or undefined when `res` does not reach the shared hooks (see `hookPrototype`) or something before
 * stowage wrapped its `end` or `writeHead` on the response itself.
 */
export function sharedResponse(res: ServerResponse): ServerResponse | undefined {
  if (!hookPrototype(res)) return undefined;
  return res.end === sharedEnd && res.writeHead === sharedWriteHead ? ServerResponse.prototype : undefined;
}

/**
 * True when `res` inherits the shared hooks, which are put the first time on its copy of express's shared
 * response object: the last prototype before node's own (a mounted sub-app's response object inherits
 * from its parent's). False for a response that is not express's, or whose copy's object has an `end`
 * or `writeHead` of someone else's.
 */
export function hookPrototype(res: ServerResponse): boolean {
  const proto = Object.getPrototypeOf(res) as ServerResponse;
  if (proto.end === sharedEnd && proto.writeHead === sharedWriteHead) return true;
  if (proto === ServerResponse.prototype) return false;
  let root: ServerResponse | null = proto;
  while (root !== null && Object.getPrototypeOf(root) !== ServerResponse.prototype) {
    root = Object.getPrototypeOf(root) as ServerResponse | null;
  }
  if (root === null || Object.hasOwn(root, "end") || Object.hasOwn(root, "writeHead")) return false;
  root.end = sharedEnd as ServerResponse["end"];
  root.writeHead = sharedWriteHead as ServerResponse["writeHead"];
  return proto.end === sharedEnd && proto.writeHead === sharedWriteHead;
}

/** The hook of a response hooked through the shared prototype: its request's session holds it. */
function sharedHook(res: ServerResponse): ResponseHook<object> | undefined {
  const lazy = (res.req as { session?: unknown } | undefined)?.session;
  if (!(lazy instanceof LazySession)) return undefined;
  const hook = lazy.response;
  return hook instanceof ResponseHook && hook.shared && hook.res === res ? hook : undefined;
}

/** A response's own hook object, as the shared `end` and `writeHead` call it. */
export interface SharedBinding {
  end(args: unknown[]): ServerResponse;
  writeHead(args: unknown[]): ServerResponse;
}

// The one other middleware whose responses end through the shared hooks: stowage/express-session's,
// which keeps its per-request cycle where this module cannot look (it imports this module, not the
// other way round), so it says how to find it.
let otherBinding: ((res: ServerResponse) => SharedBinding | undefined) | undefined;

/** Lets stowage/express-session hook its responses through express's shared response object: `find` gives a response its cycle. */
export function shareExpressHooks(find: (res: ServerResponse) => SharedBinding | undefined): void {
  otherBinding = find;
}

// Installed on express's shared response object: they serve every response of that copy of express, so
// one without a stowage session (another app's, or one hooked on its own properties) passes straight on.
function sharedEnd(this: ServerResponse, ...args: unknown[]): ServerResponse {
  const hook = sharedHook(this) ?? otherBinding?.(this);
  if (hook !== undefined) return hook.end(args);
  return (ServerResponse.prototype.end as (...a: unknown[]) => ServerResponse).apply(this, args);
}

function sharedWriteHead(this: ServerResponse, ...args: unknown[]): ServerResponse {
  const hook = sharedHook(this) ?? otherBinding?.(this);
  if (hook !== undefined) return hook.writeHead(args);
  return (ServerResponse.prototype.writeHead as (...a: unknown[]) => ServerResponse).apply(this, args);
}

/** What a hooked response needs to commit its session as it ends; also the `AttachedSession`. */
class ResponseHook<A extends object> implements AttachedSession<A>, ResponseBinding {
  // open: handler running; closing: end held back for the commit; closed: calls pass straight through.
  phase: "open" | "closing" | "closed" = "open";
  realEnd: ServerResponse["end"];
  realWriteHead: ServerResponse["writeHead"];
  /** Hooked through express's shared response object rather than the response's own properties. */
  shared: boolean;

  constructor(
    readonly sessions: Sessions<A>,
    readonly carriage: Carriage,
    readonly lazy: LazySession<A>,
    readonly secure: boolean,
    readonly res: ServerResponse,
    readonly report: (error: unknown) => void,
    // What a shared hook ends through, read now so that a later patch of node's own is still honoured.
    shared: ServerResponse | undefined,
  ) {
    this.shared = shared !== undefined;
    this.realEnd = (shared ?? res).end;
    this.realWriteHead = (shared ?? res).writeHead;
  }

  /** Ends the request for a handler error (a property, so it can be passed around unbound). */
  readonly fail = (error: unknown): void => {
    this.report(error);
    if (this.phase !== "open") return;
    this.phase = "closed";
    this.answer(error);
  };

  /**
   * A shared hook whose response has since moved to another prototype (an app of a second copy of
   * express, called as a handler rather than mounted with `app.use`, which would give its responses the
   * parent's prototype) hooks that copy's shared object too, or else its response's own properties: the
   * session being loaded now must be committed through whichever `end` the handler will call.
   */
  rebind(): void {
    if (!this.shared || hookPrototype(this.res)) return;
    this.shared = false;
    this.realEnd = this.res.end;
    this.realWriteHead = this.res.writeHead;
    hookOwn(this);
  }

  end(args: unknown[]): ServerResponse {
    const res = this.res;
    if (this.phase !== "open") return this.passEnd(args);
    const rotate = !res.headersSent;
    // The usual commit on an in-process store is done at once, and the response goes out in this turn.
    let now: { cookie: string | undefined } | undefined;
    try {
      now = commitSessionNow(this.sessions, this.lazy, this.carriage, { secure: this.secure, rotate });
    } catch (error) {
      this.abort(error);
      return res;
    }
    if (now !== undefined) return this.close(now.cookie, args);
    this.phase = "closing";
    commitSession(this.sessions, this.lazy, this.carriage, { secure: this.secure, rotate }).then(
      (cookie) => this.close(cookie, args),
      (error: unknown) => this.abort(error),
    );
    return res;
  }

  writeHead(args: unknown[]): ServerResponse {
    const res = this.res;
    if (this.phase === "open" && !res.headersSent) {
      const session = this.lazy.peek();
      const cookie = session && cookieFor(this.lazy, session, this.carriage, this.secure);
      if (cookie !== undefined) appendSetCookie(res, cookie);
    }
    return (this.realWriteHead as (...a: unknown[]) => ServerResponse).apply(res, args);
  }

  passEnd(args: unknown[]): ServerResponse {
    return (this.realEnd as (...a: unknown[]) => ServerResponse).apply(this.res, args);
  }

  close(cookie: string | undefined, args: unknown[]): ServerResponse {
    this.phase = "closed";
    if (cookie !== undefined && !this.res.headersSent) appendSetCookie(this.res, cookie);
    return this.passEnd(args);
  }

  abort(error: unknown): void {
    this.phase = "closed";
    this.report(error);
    this.answer(error);
  }

  answer(error: unknown): void {
    const res = this.res;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    for (const name of res.getHeaderNames()) res.removeHeader(name);
    const unavailable = isUnavailable(error);
    res.statusCode = unavailable ? 503 : 500;
    res.setHeader("content-type", "text/plain; charset=utf-8");
    res.setHeader("cache-control", "no-store");
    res.end(unavailable ? UNAVAILABLE_BODY : "Internal Server Error\n");
  }
}

// `this` is the response the hook was installed on, so the hook's own `res` stands for it.
function hookedEnd(this: HookedResponse, ...args: unknown[]): ServerResponse {
  return this[HOOK]!.end(args);
}

function hookedWriteHead(this: HookedResponse, ...args: unknown[]): ServerResponse {
  return this[HOOK]!.writeHead(args);
}

/** Adds a Set-Cookie header to those the response already has. */
export function appendSetCookie(res: ServerResponse, cookie: string): void {
  const existing = res.getHeader("set-cookie");
  if (existing === undefined) res.setHeader("set-cookie", cookie);
  else if (Array.isArray(existing)) res.setHeader("set-cookie", [...existing, cookie]);
  else res.setHeader("set-cookie", [String(existing), cookie]);
}

/**
 * One request header, read from `rawHeaders` so that node need not build `req.headers` for a handler that
 * never asks for it. Repeated lines combine as node combines them: cookie lines with "; ", authorization
 * keeps the first, any other name with ", ". `name` is lower-case.
 */
export function rawHeader(req: IncomingMessage, name: string): string | undefined {
  const raw = req.rawHeaders;
  let value: string | undefined;
  for (let i = 0; i < raw.length - 1; i += 2) {
    const key = raw[i]!;
    if (key.length !== name.length || key.toLowerCase() !== name) continue;
    const line = raw[i + 1]!;
    if (value === undefined) value = line;
    else if (name === "cookie") value = `${value}; ${line}`;
    else if (name !== "authorization") value = `${value}, ${line}`;
  }
  return value;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === "object" || typeof value === "function") &&
    typeof (value as { then?: unknown }).then === "function"
  );
}

function defaultReport(error: unknown): void {
  console.error("stowage: request failed:", error);
}
