// The resume protocol's frames: one JSON object per WebSocket message, its kind in `t`. Shared by the
// server and the browser client, so this module imports nothing but its siblings.
import type { CloseReason } from "./reasons.js";

/** Protocol version the hello announces. */
export const PROTOCOL_VERSION = 1;

/** A JSON value, as messages carry them. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Messages the bounds dropped before the client could have them: sequence numbers `after`+1 to `through`. */
export interface Gap {
  /** The last message the client had. */
  after: number;
  /** The last message that is gone. */
  through: number;
}

/** Frames the server sends. */
export type ServerFrame =
  | { t: "hello"; v: number; nonce: string }
  | { t: "welcome"; id: string }
  | { t: "resumed"; id: string; ack: number; gap?: Gap }
  | { t: "rejected"; reason: CloseReason }
  | { t: "m"; s: number; d: Json }
  | { t: "ack"; s: number }
  | { t: "close"; reason: CloseReason }
  | { t: "pong" };

/** Frames the client sends. */
export type ClientFrame =
  | { t: "new"; key: string; auth?: Json }
  | { t: "resume"; id: string; ack: number; key: string; proofs: string[] }
  | { t: "m"; s: number; d: Json }
  | { t: "ack"; s: number }
  | { t: "ping" };

/**
 * Most proofs a resume may carry: one by the key the client knows is current, and one by each key it
 * offered in a resume whose answer it never got (the server may have rotated to any of them).
 */
export const MAX_PROOFS = 4;

const B64URL = /^[A-Za-z0-9_-]+$/;

/** True for base64url text of exactly `bytes` bytes (no padding). */
export function isBase64url(value: unknown, bytes: number): value is string {
  return typeof value === "string" && value.length === Math.ceil((bytes * 4) / 3) && B64URL.test(value);
}

/** True for a sequence number: a whole number from 0 up to 2^53 - 1. */
export function isSeq(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/** A session id: 16 bytes, base64url. */
export const isSessionId = (value: unknown): value is string => isBase64url(value, 16);
/** A raw Ed25519 public key, base64url. */
export const isPublicKey = (value: unknown): value is string => isBase64url(value, 32);
/** An Ed25519 signature, base64url. */
export const isSignature = (value: unknown): value is string => isBase64url(value, 64);

function parseObject(text: string): Record<string, unknown> | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

/** A message or an ack, the frames both sides send; undefined for anything else. */
function parseSequenced(
  f: Record<string, unknown>,
): { t: "m"; s: number; d: Json } | { t: "ack"; s: number } | undefined {
  if (f.t === "m") return isSeq(f.s) && f.s > 0 && "d" in f ? { t: "m", s: f.s, d: f.d as Json } : undefined;
  return f.t === "ack" && isSeq(f.s) ? { t: "ack", s: f.s } : undefined;
}

/** A client frame, checked field by field; undefined for anything else (the server answers `malformed`). */
export function parseClientFrame(text: string): ClientFrame | undefined {
  const f = parseObject(text);
  if (f === undefined) return undefined;
  switch (f.t) {
    case "m":
    case "ack":
      return parseSequenced(f);
    case "ping":
      return { t: "ping" };
    case "new":
      if (!isPublicKey(f.key)) return undefined;
      return f.auth === undefined ? { t: "new", key: f.key } : { t: "new", key: f.key, auth: f.auth as Json };
    case "resume":
      return isSessionId(f.id) &&
        isSeq(f.ack) &&
        isPublicKey(f.key) &&
        Array.isArray(f.proofs) &&
        f.proofs.length >= 1 &&
        f.proofs.length <= MAX_PROOFS &&
        f.proofs.every(isSignature)
        ? { t: "resume", id: f.id, ack: f.ack, key: f.key, proofs: f.proofs as string[] }
        : undefined;
    default:
      return undefined;
  }
}

/** A server frame, checked; undefined for anything else (the client closes and reconnects). */
export function parseServerFrame(text: string): ServerFrame | undefined {
  const f = parseObject(text);
  if (f === undefined) return undefined;
  switch (f.t) {
    case "m":
    case "ack":
      return parseSequenced(f);
    case "pong":
      return { t: "pong" };
    case "hello":
      return typeof f.v === "number" && isBase64url(f.nonce, 32)
        ? { t: "hello", v: f.v, nonce: f.nonce }
        : undefined;
    case "welcome":
      return isSessionId(f.id) ? { t: "welcome", id: f.id } : undefined;
    case "resumed": {
      if (!isSessionId(f.id) || !isSeq(f.ack)) return undefined;
      const gap = f.gap as Partial<Gap> | undefined;
      if (gap === undefined) return { t: "resumed", id: f.id, ack: f.ack };
      return isSeq(gap.after) && isSeq(gap.through)
        ? { t: "resumed", id: f.id, ack: f.ack, gap: { after: gap.after, through: gap.through } }
        : undefined;
    }
    case "rejected":
    case "close":
      return typeof f.reason === "string" ? { t: f.t, reason: f.reason as CloseReason } : undefined;
    default:
      return undefined;
  }
}

/**
 * The text a resume proof signs: the server's nonce (so a proof is good for one connection only), the
 * session id, the client's ack and its next public key (so nobody can swap in a key of their own).
 */
export function proofText(nonce: string, id: string, ack: number, nextKey: string): string {
  return `stowage-resume/${PROTOCOL_VERSION}\n${nonce}\n${id}\n${ack}\n${nextKey}`;
}
