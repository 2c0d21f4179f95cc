import * as nodeCrypto from "node:crypto";
import { createHash, randomBytes, randomFillSync } from "node:crypto";

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
  const bytes = tokenBytes();
  const id = bytes.toString("base64url", 0, 16);
  const secret = bytes.toString("base64url", 16, 48);
  // Issued bytes leave the pool at once: it only ever holds randomness no token has used yet.
  bytes.fill(0);
  return { id, token: `${id}.${secret}`, verifier: verifierOf(secret) };
}

// Tokens come from a pool the CSPRNG fills 64 tokens at a time: one call costs about 7 µs on a VM (a
// system call each), a slice of the pool 0.2 µs (bench: creating a session). Each byte is used once.
const TOKEN_BYTES = 48;
const POOL = Buffer.alloc(TOKEN_BYTES * 64);
let poolAt = POOL.length;

function tokenBytes(): Buffer {
  if (poolAt === POOL.length) {
    randomFillSync(POOL);
    poolAt = 0;
  }
  const bytes = POOL.subarray(poolAt, poolAt + TOKEN_BYTES);
  poolAt += TOKEN_BYTES;
  return bytes;
}

/** Strictly parses `id.secret`; anything else (wrong length, alphabet, padding, non-canonical) is null. */
export function parseToken(input: unknown): ParsedToken | null {
  return wellFormed(input) ? { id: input.slice(0, ID_LENGTH), secret: input.slice(ID_LENGTH + 1) } : null;
}

function wellFormed(input: unknown): input is string {
  return (
    typeof input === "string" &&
    input.length === TOKEN_LENGTH &&
    input.charCodeAt(ID_LENGTH) === 46 && // "."
    canonical(input, 0, ID_LENGTH - 1, 2) &&
    canonical(input, ID_LENGTH + 1, TOKEN_LENGTH - 1, 4)
  );
}

/** True for a well-formed session id. */
export function isValidId(input: unknown): input is string {
  return typeof input === "string" && input.length === ID_LENGTH && canonical(input, 0, ID_LENGTH - 1, 2);
}

/** SHA-256 of the secret's base64url text, base64url. */
export function verifierOf(secret: string): string {
  return sha256(secret);
}

/** A well-formed token on its way to being checked against a stored verifier. */
export interface CheckedToken extends ParsedToken {
  /** The whole `id.secret` text. */
  token: string;
  /** `verifierOf(secret)` as ASCII bytes, once computed: a token whose id names nothing is never hashed. */
  hashed: Uint8Array | undefined;
  /** The stored verifier this token last matched, so that a remembered token is not compared again. */
  matched: string | undefined;
}

/**
 * Hands a remembered token the store's own string for its id. The text is equal (the store found the
 * record by it); being the same string object, the next Map lookup of a keep-alive client's token
 * matches the stored key by pointer instead of comparing characters (docs/internals.md, "MemoryStore get,
 * through the manager"). Nothing depends on it for correctness: a different object only costs the compare.
 */
export function shareStoredId(checked: CheckedToken, storedId: string): void {
  checked.id = storedId;
}

/**
 * Constant-time check of a token's secret against a stored verifier; hashes the secret on first use.
 *
 * Fast path (docs/internals.md, bench row "node:http server CPU per request"): a keep-alive client's
 * remembered token (`TokenMemo`, matched in constant time) that already matched this verifier is not
 * compared again. The `===` looks only at two texts of the store's, never at what the client sent.
 */
export function matchesVerifier(checked: CheckedToken, verifier: string): boolean {
  if (verifier === checked.matched) return true;
  checked.hashed ??= asciiBytes(sha256(checked.secret));
  if (!equalBytes(verifier, checked.hashed)) return false;
  checked.matched = verifier;
  return true;
}

/**
 * Parses tokens, remembering per connection the last one it parsed (and, once checked, its hash), so a
 * keep-alive connection that sends the same token again skips parsing and SHA-256. A connection is any
 * object that lives as long as the client's connection (a socket); its entry goes with it. The token is
 * matched in constant time, so a connection shared by several clients (behind a proxy) learns nothing
 * from how long a miss takes.
 */
export class TokenMemo {
  readonly #last = new WeakMap<object, { checked: CheckedToken; words: Int32Array }>();

  /** The token parsed (null when malformed), from memory when this connection sent it last. */
  check(token: unknown, connection: object | undefined): CheckedToken | null {
    if (connection === undefined) return checkToken(token);
    const last = this.#last.get(connection);
    if (last !== undefined && typeof token === "string" && equalToken(token, last.words)) return last.checked;
    const checked = checkToken(token);
    if (checked !== null) this.#last.set(connection, { checked, words: tokenWords(checked.token) });
    return checked;
  }
}

// A token compared four bytes at a time: 17 words instead of 66 bytes per keep-alive request (docs/internals.md,
// bench row "node:http + stowage (MemoryStore, 1 KB) vs the bare Map handler: instructions per request").
const TOKEN_WORDS = Math.ceil(TOKEN_LENGTH / 4);

/** A well-formed token's ASCII bytes as words, the bytes past its end zero. */
function tokenWords(token: string): Int32Array {
  const words = new Int32Array(TOKEN_WORDS);
  utf8.encodeInto(token, new Uint8Array(words.buffer));
  return words;
}

/** `equalBytes` against `tokenWords`: in time that depends only on the text's length and whether it is ASCII. */
function equalToken(text: string, words: Int32Array): boolean {
  if (text.length !== TOKEN_LENGTH) return false;
  // The scratch bytes past the token may hold a longer text's; the stored words have zeros there.
  for (let i = TOKEN_LENGTH; i < TOKEN_WORDS * 4; i++) left[i] = 0;
  if (!intoScratch(text, left)) return false;
  let diff = 0;
  for (let i = 0; i < TOKEN_WORDS; i++) diff |= leftWords[i]! ^ words[i]!;
  return diff === 0;
}

function checkToken(token: unknown): CheckedToken | null {
  if (!wellFormed(token)) return null;
  return {
    token,
    id: token.slice(0, ID_LENGTH),
    secret: token.slice(ID_LENGTH + 1),
    hashed: undefined,
    matched: undefined,
  };
}

// Scratch space for equalText and equalBytes. Reading a string a character at a time costs several
// nanoseconds per character (each charCodeAt dispatches on the string's representation); one native call
// copies it.
const SCRATCH_CHARS = 80;
const left = new Uint8Array(SCRATCH_CHARS * 3);
const right = new Uint8Array(SCRATCH_CHARS * 3);
const leftWords = new Int32Array(left.buffer);
const utf8 = new TextEncoder();

/**
 * Compares two strings in time that depends only on their lengths (and, for the copy into scratch space,
 * on whether they are ASCII): every character is looked at and differences are OR-ed together, with no
 * early exit. Tokens and verifiers, the texts compared per request, are always ASCII.
 */
export function equalText(a: string, b: string): boolean {
  const n = a.length;
  if (b.length !== n) return false;
  // One byte per character means ASCII, where the copy is exact; anything else (a lone surrogate turns
  // into U+FFFD) is compared character by character.
  if (n > SCRATCH_CHARS || !intoScratch(a, left) || !intoScratch(b, right)) return equalChars(a, b);
  return sameBytes(left, right, n);
}

/**
 * `equalText` against an ASCII text kept as bytes: one copy per comparison instead of two. In time that
 * depends only on the lengths (and on whether `text` is ASCII, which a match must be).
 */
export function equalBytes(text: string, bytes: Uint8Array): boolean {
  const n = bytes.length;
  if (text.length !== n) return false;
  if (n > SCRATCH_CHARS) {
    let diff = 0;
    for (let i = 0; i < n; i++) diff |= text.charCodeAt(i) ^ bytes[i]!;
    return diff === 0;
  }
  // Non-ASCII text cannot match ASCII bytes.
  return intoScratch(text, left) && sameBytes(left, bytes, n);
}

/** The bytes of an ASCII text (a token or a verifier), kept to compare against with `equalBytes`. */
function asciiBytes(text: string): Uint8Array {
  return utf8.encode(text);
}

/** Copies a text of at most SCRATCH_CHARS characters into `scratch`; false when it is not ASCII. */
function intoScratch(text: string, scratch: Uint8Array): boolean {
  return utf8.encodeInto(text, scratch).written === text.length;
}

function sameBytes(a: Uint8Array, b: Uint8Array, n: number): boolean {
  let diff = 0;
  for (let i = 0; i < n; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

function equalChars(a: string, b: string): boolean {
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
