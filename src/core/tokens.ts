import * as nodeCrypto from "node:crypto";
import { createHash, randomBytes } from "node:crypto";

/** Length of a session id in base64url characters (16 bytes). */
export const ID_LENGTH = 22;
/** Length of a token secret in base64url characters (32 bytes). */
export const SECRET_LENGTH = 43;
/** Length of a whole `id.secret` token. */
export const TOKEN_LENGTH = ID_LENGTH + 1 + SECRET_LENGTH;

// Canonical base64url only: the last character may carry only the bits the byte count leaves, so each
// byte string has exactly one accepted spelling.
const TOKEN_RE = /^[A-Za-z0-9_-]{21}[AQgw]\.[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;
const ID_RE = /^[A-Za-z0-9_-]{21}[AQgw]$/;

// One-shot hashing (Node >= 20.12) skips building a Hash object, and asking for base64url text skips a
// Buffer that is slow to hand back; earlier Node 20 releases fall back to createHash.
const sha256: (data: Buffer) => string =
  typeof nodeCrypto.hash === "function"
    ? (data) => nodeCrypto.hash("sha256", data, "base64url")
    : (data) => createHash("sha256").update(data).digest("base64url");

/** A freshly minted token: the id, the secret to hand to the client, and the verifier to store. */
export interface IssuedToken {
  /** Session id (public half). */
  id: string;
  /** `id.secret`, to give to the client only. */
  token: string;
  /** SHA-256 of the secret, base64url: what stores keep. */
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
  if (typeof input !== "string" || input.length !== TOKEN_LENGTH || !TOKEN_RE.test(input)) return null;
  return { id: input.slice(0, ID_LENGTH), secret: input.slice(ID_LENGTH + 1) };
}

/** True for a well-formed session id. */
export function isValidId(input: unknown): input is string {
  return typeof input === "string" && input.length === ID_LENGTH && ID_RE.test(input);
}

/** SHA-256 of the secret's bytes, base64url. */
export function verifierOf(secret: string): string {
  return sha256(Buffer.from(secret, "base64url"));
}

/** Constant-time check of a secret against a stored verifier. */
export function verifySecret(secret: string, verifier: string): boolean {
  return equalText(sha256(Buffer.from(secret, "base64url")), verifier);
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
