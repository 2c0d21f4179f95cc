import type { Sessions } from "../core/manager.js";
import { Carriage, type HttpSessionOptions } from "./carriage.js";
import { commitSession, isUnavailable, type LazySession, openSession, unavailableResponse } from "./core.js";

/** A fetch-style handler that gets the request's lazy session. */
export type FetchSessionHandler<A extends object> = (
  request: Request,
  session: LazySession<A>,
) => Response | Promise<Response>;

/**
 * Wraps a fetch-style handler (`Request` in, `Response` out: Deno, Bun, workers, @hono/node-server) so it
 * gets a lazy session; the session is committed after the handler and the Set-Cookie added to its
 * response. A store outage becomes a 503; any other handler error is rethrown to the host.
 *
 * @example
 * const handle = handleFetch(sessions, async (request, session) => {
 *   const s = await session;
 *   s.set("visits", (s.get("visits") ?? 0) + 1);
 *   return Response.json({ visits: s.get("visits") });
 * });
 * Bun.serve({ fetch: handle });
 */
export function handleFetch<A extends object>(
  sessions: Sessions<A>,
  handler: FetchSessionHandler<A>,
  options: HttpSessionOptions = {},
): (request: Request) => Promise<Response> {
  const carriage = new Carriage(options);
  return async (request) => {
    const headers = request.headers;
    const secure = carriage.isSecure(request.url.startsWith("https:"), headers.get("x-forwarded-proto"));
    const lazy = openSession(sessions, carriage, {
      cookie: headers.get("cookie"),
      header: carriage.header === undefined ? null : headers.get(carriage.header),
      secure,
    });
    let response: Response;
    let cookie: string | undefined;
    try {
      response = await handler(request, lazy);
      cookie = await commitSession(sessions, lazy, carriage, { secure, rotate: true });
    } catch (error) {
      if (isUnavailable(error)) return unavailableResponse();
      throw error;
    }
    return cookie === undefined ? response : withSetCookie(response, cookie);
  };
}

/** The response with one more Set-Cookie; a copy when its headers are immutable (redirects, fetched responses). */
export function withSetCookie(response: Response, cookie: string): Response {
  try {
    response.headers.append("set-cookie", cookie);
    return response;
  } catch {
    const headers = new Headers(response.headers);
    headers.append("set-cookie", cookie);
    return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
  }
}
