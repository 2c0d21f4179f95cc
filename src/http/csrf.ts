import type { Session } from "../core/session.js";
import { LazySession } from "./core.js";

/** Header a script sends the CSRF token in. */
export const CSRF_HEADER = "x-csrf-token";

/** Request headers as fetch (`Headers`) or node:http (`req.headers`) give them. */
export type HeaderBag = Headers | Readonly<Record<string, string | string[] | undefined>>;

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS", "TRACE"]);

/**
 * True when a request may go on: safe methods (GET, HEAD, OPTIONS, TRACE) pass without loading the
 * session, and so do header-carried sessions (a browser never attaches them on its own); any other
 * request must carry the session's `csrfToken`, as `submitted` (a form field you parsed) or in the
 * `x-csrf-token` header. Answer 403 when it is false.
 *
 * @example
 * if (!(await requireCsrf(req, session, form.get("_csrf")))) return new Response("Forbidden", { status: 403 });
 */
export async function requireCsrf<A extends object>(
  request: { readonly method?: string | undefined; readonly headers: HeaderBag },
  session: PromiseLike<Session<A>>,
  submitted?: unknown,
): Promise<boolean> {
  if (SAFE_METHODS.has((request.method ?? "GET").toUpperCase())) return true;
  if (session instanceof LazySession && session.via === "header") return true;
  const token = typeof submitted === "string" ? submitted : headerOf(request.headers, CSRF_HEADER);
  return (await session).verifyCsrf(token);
}

function headerOf(headers: HeaderBag, name: string): string | undefined {
  if (headers instanceof Headers) return headers.get(name) ?? undefined;
  const value = headers[name];
  return typeof value === "string" ? value : undefined;
}
