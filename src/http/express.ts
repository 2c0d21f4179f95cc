import type { NextFunction, Request, RequestHandler, Response } from "express";
import { StowageError } from "../core/errors.js";
import type { Sessions } from "../core/manager.js";
import type { Attributes } from "../core/record.js";
import { Carriage } from "./carriage.js";
import { LazySession } from "./core.js";
import type { RegisteredAttributes } from "./index.js";
import { attachedHook, attachToExpress, type NodeSessionOptions } from "./node.js";

export type { HttpSessionOptions } from "./carriage.js";
export { requireCsrf } from "./csrf.js";
export type { Register, RegisteredAttributes } from "./index.js";
export type { LegacySessionData, LegacyStore, MigrateOptions } from "./migrate.js";
export type { NodeSessionOptions as ExpressSessionOptions } from "./node.js";
export { LazySession };

/** A request's lazy session, typed by the registered manager: what the documented `Express.Request` augmentation declares. */
export type RequestSession = LazySession<RegisteredAttributes>;

/**
 * An express request with its session, typed by the registered manager (`Register` in stowage/http).
 * express-session's type declarations claim `req.session` globally, so stowage does not merge into
 * `Express.Request` itself; docs/http.md shows the one-line augmentation that makes this type a handler's
 * parameter type in an app without express-session's types.
 */
export type SessionRequest<A extends object = RegisteredAttributes> = Omit<Request, "session"> & {
  /** The request's lazy session (read-only). */
  readonly session: LazySession<A>;
};

/**
 * Express middleware (express 4 and 5) that puts a lazy session on `req.session` and commits it when the
 * response ends, before its headers go out. The cookie is Secure when express says the request is
 * (`req.secure`, which follows express's "trust proxy" setting). A store outage becomes a 503: a failed
 * load reaches express's error handling with `status` 503 (on express 4, which does not catch a rejected
 * handler, the middleware passes it to `next` itself and the awaiting handler does not resume); a failed
 * commit is answered 503 here.
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
  const carriage = new Carriage(options, ["onError"]);
  const onError = options.onError;
  return (req: Request, res: Response, next: NextFunction) => {
    const attached = attachedHook(res);
    if (attached !== undefined) {
      // Mounted twice on one request's way (an app and its router, or an app of another copy of express
      // called as a handler inside): the first one's session stands, hooked wherever the response ends now.
      if (attached.sessions !== sessions) {
        next(new StowageError("CONFIG_INVALID", ANOTHER_MANAGER));
        return;
      }
      attached.rebind();
      next();
      return;
    }
    attachToExpress(sessions, carriage, req, res, {
      onError,
      tls: req.secure,
      onLoadError: catchesRejections(req) ? undefined : next,
    });
    next();
  };
}

const ANOTHER_MANAGER =
  "this request already has a session of another Sessions manager: one sessionMiddleware's session per request";

/**
 * True on express 5, whose router passes a rejected handler's error to `next`. express 4 ignores it (the
 * process would die of an unhandled rejection); its application keeps its router in `_router`.
 */
function catchesRejections(req: Request): boolean {
  return typeof (req.app as { _router?: unknown } | undefined)?._router !== "function";
}

/** The lazy session `sessionMiddleware` put on this request. */
export function sessionOf<A extends object = RegisteredAttributes>(req: Request): LazySession<A> {
  const session = (req as unknown as Partial<SessionRequest<A>>).session;
  if (!(session instanceof LazySession)) {
    throw new StowageError(
      "CONFIG_INVALID",
      "no stowage session on this request: install sessionMiddleware first",
    );
  }
  return session;
}
