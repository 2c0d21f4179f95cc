import type { MiddlewareHandler } from "hono";
import type { Sessions } from "../core/manager.js";
import type { Attributes } from "../core/record.js";
import { Carriage, type HttpSessionOptions } from "./carriage.js";
import { commitSession, isUnavailable, type LazySession, openSession, unavailableResponse } from "./core.js";
import type { RegisteredAttributes } from "./index.js";

export type { HttpSessionOptions as HonoSessionOptions } from "./carriage.js";
export { LazySession } from "./core.js";
export { requireCsrf } from "./csrf.js";
export type { Register, RegisteredAttributes } from "./index.js";
export type { LegacySessionData, LegacyStore, MigrateOptions } from "./migrate.js";

/** Context variables the middleware sets: type your app with `new Hono<{ Variables: SessionVariables<A> }>()`. */
export type SessionVariables<A extends object = RegisteredAttributes> = {
  /** The request's lazy session. */
  session: LazySession<A>;
};

/**
 * Hono middleware that sets `c.get("session")` to a lazy session, commits it after the handler and adds
 * the Set-Cookie to `c.res`. A store outage, thrown by the handler or met at the commit, becomes a 503;
 * a request whose handler failed is not committed.
 *
 * @example
 * const app = new Hono<{ Variables: SessionVariables<{ visits: number }> }>();
 * app.use(sessionMiddleware(sessions));
 * app.post("/visit", async (c) => {
 *   const session = await c.get("session");
 *   session.set("visits", (session.get("visits") ?? 0) + 1);
 *   return c.json({ visits: session.get("visits") });
 * });
 */
export function sessionMiddleware<A extends object = Attributes>(
  sessions: Sessions<A>,
  options: HttpSessionOptions = {},
): MiddlewareHandler<{ Variables: SessionVariables<A> }> {
  const carriage = new Carriage(options);
  return async (c, next) => {
    const secure = carriage.isSecure(c.req.url.startsWith("https:"), c.req.header("x-forwarded-proto"));
    const header = carriage.header === undefined ? undefined : c.req.header(carriage.header);
    // On @hono/node-server the socket is at c.env.incoming: a keep-alive client's repeated token is then
    // checked without parsing and hashing it again (bench: hono server CPU per request).
    const connection = (c.env as { incoming?: { socket?: object } } | undefined)?.incoming?.socket;
    const lazy = openSession(sessions, carriage, {
      cookie: c.req.header("cookie"),
      header,
      secure,
      connection,
    });
    c.set("session", lazy);
    await next();
    if (c.error) {
      if (isUnavailable(c.error)) replace(c, unavailableResponse());
      return;
    }
    try {
      const cookie = await commitSession(sessions, lazy, carriage, { secure, rotate: true });
      if (cookie !== undefined) c.header("set-cookie", cookie, { append: true });
    } catch (error) {
      if (!isUnavailable(error)) throw error;
      replace(c, unavailableResponse());
    }
  };
}

// Assigning c.res merges the old response's headers into the new one; clearing it first keeps the 503 clean.
function replace(c: { res: Response | undefined }, response: Response): void {
  c.res = undefined;
  c.res = response;
}
