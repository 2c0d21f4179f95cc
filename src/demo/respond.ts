import type { ServerResponse } from "node:http";

/** A response a route decided on, sent only after the session is committed. */
export interface Reply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

// The pages load nothing but their own stylesheet and scripts, post only to themselves and open a
// WebSocket only to their own host (the live panel).
const PAGE_HEADERS = {
  "Content-Security-Policy":
    "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "same-origin",
  "Cache-Control": "no-store",
};

/** An HTML page with the demo's security headers. */
export function page(status: number, body: string, headers: Record<string, string> = {}): Reply {
  return {
    status,
    body,
    headers: { ...PAGE_HEADERS, ...headers, "Content-Type": "text/html; charset=utf-8" },
  };
}

/** A static text asset that browsers may cache briefly. */
export function asset(type: string, body: string): Reply {
  return {
    status: 200,
    body,
    headers: {
      "Content-Type": type,
      "Cache-Control": "public, max-age=300",
      "X-Content-Type-Options": "nosniff",
    },
  };
}

/** Post/redirect/get: a 303 so the browser follows with a GET and a reload never re-posts the form. */
export function redirect(location: string): Reply {
  return { status: 303, body: "", headers: { Location: location, "Cache-Control": "no-store" } };
}

/**
 * Sends a reply. Headers are set, not written with writeHead, so they go out only at `end`, after the
 * HTTP layer has added the session cookie.
 */
export function send(res: ServerResponse, reply: Reply): void {
  res.statusCode = reply.status;
  for (const [name, value] of Object.entries(reply.headers)) res.setHeader(name, value);
  res.setHeader("Content-Length", Buffer.byteLength(reply.body));
  res.end(reply.body);
}
