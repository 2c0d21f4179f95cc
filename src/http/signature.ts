// express-session's cookie signature (the cookie-signature package): `value.` + base64(HMAC-SHA256(secret,
// value)) without padding. Read when moving old sessions over, and written by stowage/express-session on
// an express-session store, where the signature is all that stands between a guessed sid and a session.
import { createHmac, timingSafeEqual } from "node:crypto";

/** A secret express-session accepts: text or bytes. */
export type SigningSecret = string | Buffer;

/** `value` signed with `secret`: `value.signature`. */
export function sign(value: string, secret: SigningSecret): string {
  return `${value}.${mac(value, secret)}`;
}

/**
 * The value a signed text carries, or undefined when no secret of `secrets` signed it. Every secret is
 * tried, so the time taken does not say which one matched.
 */
export function unsign(signed: string, secrets: readonly SigningSecret[]): string | undefined {
  const dot = signed.lastIndexOf(".");
  if (dot <= 0) return undefined;
  const value = signed.slice(0, dot);
  const given = Buffer.from(signed.slice(dot + 1));
  let good = false;
  for (const secret of secrets) {
    const expected = Buffer.from(mac(value, secret));
    if (expected.length === given.length && timingSafeEqual(expected, given)) good = true;
  }
  return good ? value : undefined;
}

function mac(value: string, secret: SigningSecret): string {
  return createHmac("sha256", secret).update(value).digest("base64").replace(/=+$/, "");
}
