// What a request knows about the sessions it holds a token for: the secret (to write the cookie), its
// verifier (to insert the record) and the properties as stored (the base of the next per-key delta).
// Kept on the request under a symbol, so nothing of it is enumerable or reaches JSON.
import type { Snapshot } from "./properties.js";

/** The token of one session id a request may write a cookie for. */
export interface Grant {
  /** The session id. */
  id: string;
  /** The secret half of the token (base64url), for the cookie only. */
  secret: string;
  /** SHA-256 of the secret, what the store keeps. */
  verifier: string;
  /** The properties (`cookie` included) as last read or written; undefined while not in the store yet. */
  stored: Snapshot | undefined;
}

/** What StowageStore.get puts on the data it returns, under STORED. */
export interface StoredSession {
  /** The record's verifier, to check the cookie's secret against. */
  verifier: string;
  /** The properties as stored (`cookie` included). */
  snapshot: Snapshot;
  /** The data object itself until a `Session` is made of it: it then becomes that session. */
  fresh: object | undefined;
}

/** The symbol under which StowageStore.get puts `StoredSession` on the data it returns. */
export const STORED = Symbol("stowage.stored");

/** A request's state, under one property: its grants (one, or two after a regenerate) and its save listener. */
export interface RequestState {
  /** The tokens this request holds. */
  readonly grants: Grant[];
  /** Told that `session` is being written by `save`, so the end of the response need not write it again. */
  saving?(session: object): void;
}

const STATE = Symbol("stowage.request");

interface Holding {
  [STATE]?: RequestState;
}

/** Gives a request its state (the middleware's per-request cycle). */
export function holdState(req: object, state: RequestState): void {
  (req as Holding)[STATE] = state;
}

/** The request's state, if the middleware gave it one. */
export function stateOf(req: object | undefined): RequestState | undefined {
  return req === undefined ? undefined : (req as Holding)[STATE];
}

/** Adds a grant to a request (giving it a bare state when the middleware did not). */
export function addGrant(req: object, grant: Grant): void {
  let state = stateOf(req);
  if (state === undefined) {
    state = { grants: [] };
    holdState(req, state);
  }
  state.grants.push(grant);
}

/** The grant a request holds for `sid`, if any. */
export function grantOf(req: object | undefined, sid: string): Grant | undefined {
  const grants = stateOf(req)?.grants;
  if (grants === undefined) return undefined;
  for (let i = grants.length - 1; i >= 0; i--) if (grants[i]!.id === sid) return grants[i];
  return undefined;
}

/** The snapshot StowageStore.get put on `data`, if it did. */
export function storedOf(data: object): StoredSession | undefined {
  return (data as { [STORED]?: StoredSession })[STORED];
}
