import { randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { equalText } from "../core/tokens.js";
import { readCookie } from "../http/carriage.js";

// The sign-in form is guarded without a stored session, so a visitor who only looks (a crawler, a
// passer-by) writes nothing to the store: a random value in a cookie of its own, repeated in the form
// (double submit), plus an Origin check. A page of another site can neither read the cookie nor set it.

/** The cookie that carries the sign-in form's token. */
export const SIGN_IN_COOKIE = "demo_signin";
const TOKEN_RE = /^[A-Za-z0-9_-]{43}$/;

/** The request's sign-in token if it has one, and a Set-Cookie when a new one had to be made. */
export function signInToken(req: IncomingMessage): { token: string; setCookie?: string } {
  const existing = readCookie(req.headers.cookie, SIGN_IN_COOKIE);
  if (existing !== undefined && TOKEN_RE.test(existing)) return { token: existing };
  const token = randomBytes(32).toString("base64url");
  return { token, setCookie: `${SIGN_IN_COOKIE}=${token}; Path=/; HttpOnly; SameSite=Strict` };
}

/** True when the posted form carries this browser's sign-in token and comes from this site. */
export function signInAllowed(req: IncomingMessage, submitted: string | null): boolean {
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== "null") {
    let host: string;
    try {
      host = new URL(origin).host;
    } catch {
      return false;
    }
    if (host !== req.headers.host) return false;
  }
  const cookie = readCookie(req.headers.cookie, SIGN_IN_COOKIE);
  return (
    typeof submitted === "string" &&
    cookie !== undefined &&
    TOKEN_RE.test(cookie) &&
    equalText(submitted, cookie)
  );
}

const MAX_GRAPHEMES = 64;
const segmenter = new Intl.Segmenter("en", { granularity: "grapheme" });
// Format and control characters (bidi overrides and isolates, zero-width spaces and joiners, BOM) can
// make a name display as something else; a zero-width joiner inside an emoji sequence is the exception.
const HIDDEN = /[\p{Cc}\p{Cf}]/u;
const PICTOGRAPHIC = /\p{Extended_Pictographic}/u;

/** The name to sign in with, whitespace collapsed, or the reason it is refused. */
export function checkName(raw: string): { name: string } | { refused: string } {
  const name = raw.trim().replace(/\s+/g, " ");
  const graphemes = [...segmenter.segment(name)].map((s) => s.segment);
  if (graphemes.length === 0 || graphemes.length > MAX_GRAPHEMES) {
    return { refused: `Please enter a name of 1 to ${MAX_GRAPHEMES} characters.` };
  }
  for (const grapheme of graphemes) {
    const bare = PICTOGRAPHIC.test(grapheme) ? grapheme.replaceAll("\u200d", "") : grapheme;
    if (HIDDEN.test(bare)) {
      return { refused: "Names cannot hold invisible or direction-changing characters." };
    }
  }
  return { name };
}
