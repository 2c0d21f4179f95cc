import type { IncomingMessage, ServerResponse } from "node:http";
import type { TLSSocket } from "node:tls";
import type { Sessions } from "../core/manager.js";
import { Carriage, type HttpSessionOptions } from "./carriage.js";
import {
  commitSession,
  commitSessionNow,
  cookieFor,
  isUnavailable,
  type LazySession,
  openSession,
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
  const carriage = new Carriage(options);
  return (req, res) => {
    const { lazy, fail } = attachSession(sessions, carriage, req, res, options.onError);
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

/**
 * Opens a request's lazy session and hooks the response so the session is committed when it ends.
 * `end` is held back until the commit finishes, then the Set-Cookie is added. If the handler sent the
 * headers early (`writeHead`, `write`, a pipe), the cookie for the token known then goes with them and
 * the commit skips routine rotation, whose new token could no longer reach the client.
 */
export function attachSession<A extends object>(
  sessions: Sessions<A>,
  carriage: Carriage,
  req: IncomingMessage,
  res: ServerResponse,
  report: (error: unknown) => void = defaultReport,
): AttachedSession<A> {
  const secure = carriage.isSecure(
    (req.socket as TLSSocket).encrypted === true,
    carriage.trustsProxy ? rawHeader(req, "x-forwarded-proto") : undefined,
  );
  const headerValue = carriage.header === undefined ? undefined : rawHeader(req, carriage.header);
  const lazy = openSession(sessions, carriage, rawHeader(req, "cookie"), headerValue, secure, req.socket);
  const realEnd = res.end;
  const realWriteHead = res.writeHead;
  // open: handler running; closing: end held back for the commit; closed: calls pass straight through.
  // The hooks stay in place once closed: a wrapper installed after them (compression) still calls them.
  let phase: "open" | "closing" | "closed" = "open";

  const answer = (error: unknown): void => {
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
  };

  res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
    if (phase === "open" && !this.headersSent) {
      const session = lazy.peek();
      const cookie = session && cookieFor(lazy, session, carriage, secure);
      if (cookie !== undefined) appendSetCookie(this, cookie);
    }
    return (realWriteHead as (...a: unknown[]) => ServerResponse).apply(this, args);
  } as ServerResponse["writeHead"];

  const close = (cookie: string | undefined, args: unknown[]): ServerResponse => {
    phase = "closed";
    if (cookie !== undefined && !res.headersSent) appendSetCookie(res, cookie);
    return (realEnd as (...a: unknown[]) => ServerResponse).apply(res, args);
  };
  const abort = (error: unknown): void => {
    phase = "closed";
    report(error);
    answer(error);
  };

  res.end = function (this: ServerResponse, ...args: unknown[]) {
    if (phase !== "open") return (realEnd as (...a: unknown[]) => ServerResponse).apply(this, args);
    const rotate = !this.headersSent;
    // The usual commit on an in-process store is done at once, and the response goes out in this turn.
    let now: { cookie: string | undefined } | undefined;
    try {
      now = commitSessionNow(sessions, lazy, carriage, secure, rotate);
    } catch (error) {
      abort(error);
      return this;
    }
    if (now !== undefined) return close(now.cookie, args);
    phase = "closing";
    commitSession(sessions, lazy, carriage, secure, rotate).then((cookie) => close(cookie, args), abort);
    return this;
  } as ServerResponse["end"];

  const fail = (error: unknown): void => {
    report(error);
    if (phase !== "open") return;
    phase = "closed";
    answer(error);
  };
  return { lazy, fail };
}

function appendSetCookie(res: ServerResponse, cookie: string): void {
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
