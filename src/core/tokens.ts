import * as nodeCrypto from "node:crypto";
import { createHash, randomBytes } from "node:crypto";

/** Length of a session id in base64url characters (16 bytes). */
export const ID_LENGTH = 22;
/** Length of a token secret in base64url characters (32 bytes). */
export const SECRET_LENGTH = 43;
/** Length of a whole `id.secret` token. */
export const TOKEN_LENGTH = ID_LENGTH + 1 + SECRET_LENGTH;

// Canonical base64url only: the last character may carry only the bits the byte count leaves, so each
// byte string has exactly one accepted spelling. Checked with a lookup table rather than a regular
// expression: this runs on every request, where entering the regex engine costs more than the loop.
const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
// Per character code below 128: 1 for a base64url character, plus 2 when it may end a 16-byte value
// (4 spare bits) and 4 when it may end a 32-byte value (2 spare bits).
const CLASS = new Uint8Array(128);
for (const c of ALPHABET) CLASS[c.charCodeAt(0)] = 1;
for (const c of "AQgw") CLASS[c.charCodeAt(0)]! |= 2;
for (const c of "AEIMQUYcgkosw048") CLASS[c.charCodeAt(0)]! |= 4;

/** True when characters [from, to) are base64url and the one at `to` has the bits of class `last`. */
function canonical(input: string, from: number, to: number, last: number): boolean {
  for (let i = from; i < to; i++) {
    const code = input.charCodeAt(i);
    if (code > 127 || CLASS[code] === 0) return false;
  }
  const end = input.charCodeAt(to);
  return end < 128 && (CLASS[end]! & last) !== 0;
}

// One-shot hashing (Node >= 20.12) skips building a Hash object, and asking for base64url text skips a
// Buffer that is slow to hand back; earlier Node 20 releases fall back to createHash. The input is the
// secret's base64url text: parsing admits one spelling per secret, so hashing the text is as binding as
// hashing the bytes, and it spares decoding them on every request.
const sha256: (text: string) => string =
  typeof nodeCrypto.hash === "function"
    ? (text) => nodeCrypto.hash("sha256", text, "base64url")
    : (text) => createHash("sha256").update(text).digest("base64url");

/** A freshly minted token: the id, the secret to hand to the client, and the verifier to store. */
export interface IssuedToken {
  /** Session id (public half). */
  id: string;
  /** `id.secret`, to give to the client only. */
  token: string;
  /** SHA-256 of the secret's base64url text, base64url: what stores keep. */
  verifier: string;
}

/** A token split into its halves. */
export interface ParsedToken {
  /** Session id. */
  id: string;
  /** Secret half, base64url. */
  secret: string;
}

/** A new random session id (16 CSPRNG bytes). */
export function newId(): string {
  return randomBytes(16).toString("base64url");
}

/** Mints a new id and secret from the CSPRNG. */
export function issueToken(): IssuedToken {
  const bytes = randomBytes(48);
  const id = bytes.subarray(0, 16).toString("base64url");
  const secret = bytes.subarray(16).toString("base64url");
  return { id, token: `${id}.${secret}`, verifier: verifierOf(secret) };
}

/** Strictly parses `id.secret`; anything else (wrong length, alphabet, padding, non-canonical) is null. */
export function parseToken(input: unknown): ParsedToken | null {
  if (
    typeof input !== "string" ||
    input.length !== TOKEN_LENGTH ||
    input.charCodeAt(ID_LENGTH) !== 46 || // "."
    !canonical(input, 0, ID_LENGTH - 1, 2) ||
    !canonical(input, ID_LENGTH + 1, TOKEN_LENGTH - 1, 4)
  ) {
    return null;
  }
  return { id: input.slice(0, ID_LENGTH), secret: input.slice(ID_LENGTH + 1) };
}

/** True for a well-formed session id. */
export function isValidId(input: unknown): input is string {
  return typeof input === "string" && input.length === ID_LENGTH && canonical(input, 0, ID_LENGTH - 1, 2);
}

/** SHA-256 of the secret's base64url text, base64url. */
export function verifierOf(secret: string): string {
  return sha256(secret);
}

/** Constant-time check of a secret against a stored verifier. */
export function verifySecret(secret: string, verifier: string): boolean {
  return equalText(sha256(secret), verifier);
}

/**
 * Compares two strings in time that depends only on their lengths: every character is looked at and
 * differences are OR-ed together, with no early exit. Cheaper than timingSafeEqual for short texts,
 * which would first need both turned into Buffers.
 */
export function equalText(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
