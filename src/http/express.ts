import type { NextFunction, Request, RequestHandler, Response } from "express";
import { StowageError } from "../core/errors.js";
import type { Sessions } from "../core/manager.js";
import type { Attributes } from "../core/record.js";
import { Carriage } from "./carriage.js";
import { LazySession } from "./core.js";
import { attachSession, type NodeSessionOptions } from "./node.js";

export type { HttpSessionOptions } from "./carriage.js";
export { requireCsrf } from "./csrf.js";
export type { NodeSessionOptions as ExpressSessionOptions } from "./node.js";
export { LazySession };

/**
 * An express request with its session. express-session's type declarations claim `req.session` globally,
 * so stowage does not merge into `Express.Request`; use `sessionOf(req)` or cast to this type.
 */
export type SessionRequest<A extends object = Attributes> = Omit<Request, "session"> & {
  /** The request's lazy session. */
  session: LazySession<A>;
};

/**
 * Express middleware that puts a lazy session on `req.session` and commits it when the response ends,
 * before its headers go out. A store outage becomes a 503 (a load failure reaches express's error
 * handling with `status` 503; a failed commit is answered 503 here).
 *
 * @example
 * const app = express();
 * app.use(sessionMiddleware(sessions));
 * app.post("/cart", async (req, res) => {
 *   const session = await sessionOf<{ cart: string[] }>(req);
 *   session.set("cart", [...(session.get("cart") ?? []), String(req.query.item)]);
 *   res.json(session.get("cart"));
 * });
 */
export function sessionMiddleware<A extends object = Attributes>(
  sessions: Sessions<A>,
  options: NodeSessionOptions = {},
): RequestHandler {
  const carriage = new Carriage(options);
  return (req: Request, res: Response, next: NextFunction) => {
    const { lazy } = attachSession(sessions, carriage, req, res, options.onError);
    (req as unknown as SessionRequest<A>).session = lazy;
    next();
  };
}

/** The lazy session `sessionMiddleware` put on this request. */
export function sessionOf<A extends object = Attributes>(req: Request): LazySession<A> {
  const session = (req as unknown as Partial<SessionRequest<A>>).session;
  if (!(session instanceof LazySession)) {
    throw new StowageError(
      "CONFIG_INVALID",
      "no stowage session on this request: install sessionMiddleware first",
    );
  }
  return session;
}
