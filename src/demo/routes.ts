import type { IncomingMessage, ServerResponse } from "node:http";
import { isStowageError } from "../core/errors.js";
import type { Sessions } from "../core/manager.js";
import type { Session } from "../core/session.js";
import type { DemoAttributes } from "./attributes.js";
import { deviceLabel } from "./device.js";
import { FormError, readForm } from "./form.js";
import type { LiveHooks } from "./live.js";
import { asset, page, type Reply, redirect, send } from "./respond.js";
import { checkName, signInAllowed, signInToken } from "./sign-in.js";
import { STYLE } from "./style.js";
import { devicesPage, errorPage, type Flash, sessionPage, signInPage } from "./views.js";

export type { DemoAttributes } from "./attributes.js";

/** The session as the HTTP layer hands it over: the store is read at the first `await`. */
export interface DemoSession extends PromiseLike<Session<DemoAttributes>> {
  /** The session if it was loaded, without touching the store. */
  peek(): Session<DemoAttributes> | undefined;
  /** True when the request's token named a stored session. */
  readonly found: boolean;
}

type Req = IncomingMessage;
type Route = (req: Req, lazy: DemoSession) => Promise<Reply>;
type Action = (session: Session<DemoAttributes>, form: URLSearchParams, req: Req) => Promise<Reply>;

/** First characters of a session id shown on pages and used to name a device in the revoke form. */
export const ID_PREFIX_LENGTH = 8;
const PREFIX_RE = /^[A-Za-z0-9_-]{8}$/;

/** The demo's request handler, for the HTTP layer's `withSessions`. */
export function demoRoutes(
  sessions: Sessions<DemoAttributes>,
  options: { metrics?: () => Promise<Reply>; live?: LiveHooks } = {},
): (req: Req, res: ServerResponse, lazy: DemoSession) => Promise<void> {
  const metrics = options.metrics;
  const live = options.live ?? QUIET;
  const assets = Object.fromEntries(Object.entries(live.assets).map(([path, get]) => [path, { GET: get }]));
  const routes: Record<string, Partial<Record<"GET" | "POST", Route>>> = {
    ...(metrics ? { "/metrics": { GET: metrics } } : {}),
    ...assets,
    "/": { GET: home },
    "/devices": { GET: devices(sessions) },
    "/style.css": { GET: async () => asset("text/css; charset=utf-8", STYLE) },
    "/login": { POST: login },
    "/counter": { POST: post(increment(live), true) },
    "/devices/revoke": { POST: post(revoke(sessions, live), true) },
    "/logout": { POST: post(logout(live), true) },
    "/logout-all": { POST: post(logoutEverywhere(sessions), true) },
  };

  const route = async (req: Req, lazy: DemoSession): Promise<Reply> => {
    const path = pathOf(req.url);
    const methods = path === undefined ? undefined : routes[path];
    if (!methods) return page(404, errorPage(404, "Page not found", "There is nothing at this address."));
    const method = req.method === "HEAD" ? "GET" : req.method;
    const handler = method === "GET" || method === "POST" ? methods[method] : undefined;
    if (!handler) {
      const allow = Object.keys(methods).join(", ");
      return page(405, errorPage(405, "Method not allowed", `Use ${allow} here.`), { Allow: allow });
    }
    const reply = await handler(req, lazy);
    // Commit before answering, so a store failure still gets the 503 page; the commit the HTTP layer
    // makes when the response ends then finds nothing left to write.
    const session = lazy.peek();
    if (session) await sessions.commit(session);
    return reply;
  };

  return async (req, res, lazy) => {
    let reply: Reply;
    try {
      reply = await route(req, lazy);
    } catch (error) {
      reply = failure(error);
      // A fresh session that could not be stored is dropped, so the commit at the end of the response
      // does not fail a second time and replace this page with a bare 503.
      const session = lazy.peek();
      if (reply.status === 503 && session && !lazy.found && !session.isEnded) session.end();
    }
    send(res, reply);
  };
}

async function home(req: Req, lazy: DemoSession): Promise<Reply> {
  const session = await lazy;
  const flash = takeFlash(session);
  if (session.userId === undefined) return signIn(req, 200, flash);
  return page(
    200,
    sessionPage({
      user: session.userId,
      idPrefix: session.id.slice(0, ID_PREFIX_LENGTH),
      createdAt: session.createdAt,
      expiresAt: session.expiresAt,
      level: session.level,
      device: session.get("device") ?? "an unknown device",
      counter: session.get("counter") ?? 0,
      csrf: session.csrfToken,
      flash,
    }),
  );
}

function devices(sessions: Sessions<DemoAttributes>): Route {
  return async (_req, lazy) => {
    const session = await lazy;
    const user = session.userId;
    if (user === undefined) return redirect("/");
    const flash = takeFlash(session);
    const list = (await sessions.listForUser(user)).filter((info) => info.kind === "http");
    const rows = list.map((info) => ({
      idPrefix: info.id.slice(0, ID_PREFIX_LENGTH),
      device: typeof info.attributes.device === "string" ? info.attributes.device : "Unknown device",
      createdAt: info.createdAt,
      current: info.id === session.id,
    }));
    return page(200, devicesPage({ user, csrf: session.csrfToken, devices: rows, flash }));
  };
}

/** The sign-in page, guarded by the sign-in cookie (see sign-in.ts): showing it stores no session. */
function signIn(req: Req, status: number, flash?: Flash): Reply {
  const { token, setCookie } = signInToken(req);
  return page(status, signInPage(token, flash), setCookie ? { "Set-Cookie": setCookie } : {});
}

/** POST /login: the sign-in cookie's token, not a session's, guards it. */
async function login(req: Req, lazy: DemoSession): Promise<Reply> {
  const form = await readForm(req);
  if (!signInAllowed(req, form.get("csrf"))) {
    // A stale tab whose cookie is gone, or a post from elsewhere: explain, with a fresh form.
    return signIn(req, 403, {
      kind: "warn",
      text: "That sign-in form had expired. Please enter your name again.",
    });
  }
  const checked = checkName(form.get("name") ?? "");
  if ("refused" in checked) return signIn(req, 400, { kind: "warn", text: checked.refused });
  const session = await lazy;
  session.login(checked.name);
  session.set("device", deviceLabel(req.headers["user-agent"]));
  return redirect("/");
}

/** A form post: CSRF-checked, and with `needsUser` only for a signed-in session (others go to the start page). */
function post(action: Action, needsUser: boolean): Route {
  return async (req, lazy) => {
    const form = await readForm(req);
    const session = await lazy;
    if (!session.verifyCsrf(form.get("csrf"))) {
      return page(
        403,
        errorPage(
          403,
          "Form expired",
          "This form was not sent by this session. Go back, reload the page and try again.",
        ),
      );
    }
    if (needsUser && session.userId === undefined) return redirect("/");
    return action(session, form, req);
  };
}

/** Without a live endpoint (tests of the routes alone): no pushes, no panels to end, no scripts. */
const QUIET: LiveHooks = { notify: async () => undefined, endDevice: async () => undefined, assets: {} };

function increment(live: LiveHooks): Action {
  return async (session) => {
    const counter = await session.update("counter", (n) => (n ?? 0) + 1);
    // Every live panel of the user shows it, this device's included (its page reloads anyway).
    await live.notify(session.userId!, { counter });
    return redirect("/");
  };
}

function revoke(sessions: Sessions<DemoAttributes>, live: LiveHooks): Action {
  return async (session, form) => {
    const prefix = form.get("id") ?? "";
    // Only the user's own sessions can match, so no one can end another user's session.
    const all = PREFIX_RE.test(prefix) ? await sessions.listForUser(session.userId!) : [];
    const mine = all.filter((info) => info.kind === "http");
    const matches = mine.filter((info) => info.id.startsWith(prefix));
    const target = matches.length === 1 ? matches[0]! : undefined;
    if (!target) {
      session.set("flash", { kind: "warn", text: "That device is no longer signed in." });
    } else if (target.id === session.id) {
      await live.endDevice(session.userId!, session.id);
      session.end();
      return redirect("/");
    } else {
      await live.endDevice(session.userId!, target.id);
      await sessions.end(target.id);
      const device = typeof target.attributes.device === "string" ? target.attributes.device : "The device";
      session.set("flash", { kind: "ok", text: `${device} (${prefix}) is signed out.` });
    }
    return redirect("/devices");
  };
}

function logout(live: LiveHooks): Action {
  return async (session) => {
    await live.endDevice(session.userId!, session.id);
    session.end();
    return redirect("/");
  };
}

function logoutEverywhere(sessions: Sessions<DemoAttributes>): Action {
  return async (session) => {
    await sessions.endAllForUser(session.userId!, { except: session.id });
    session.end();
    return redirect("/");
  };
}

function takeFlash(session: Session<DemoAttributes>): Flash | undefined {
  const flash = session.get("flash");
  if (flash !== undefined) session.delete("flash");
  return flash;
}

function pathOf(url: string | undefined): string | undefined {
  if (!url?.startsWith("/")) return undefined;
  const end = url.search(/[?#]/);
  return end === -1 ? url : url.slice(0, end);
}

function failure(error: unknown): Reply {
  if (error instanceof FormError)
    return page(error.status, errorPage(error.status, "Form refused", error.message));
  if (isStowageError(error, "STORE_UNAVAILABLE")) {
    return page(
      503,
      errorPage(
        503,
        "Sessions are unavailable",
        "The session store cannot be reached right now. Try again shortly.",
      ),
      { "Retry-After": "5" },
    );
  }
  // The session was revoked from another device while this request ran.
  if (isStowageError(error, "SESSION_ENDED")) return redirect("/");
  console.error("stowage demo: unexpected error:", error);
  return page(500, errorPage(500, "Something went wrong", "The server could not answer this request."));
}
