// What a request knows about the sessions it holds a token for: the secret (to write the cookie), its
// verifier (to insert the record) and the attribute texts as stored (the base of the next per-key delta).
// Kept on the request under a symbol, so nothing of it is enumerable or reaches JSON.

/** The token of one session id a request may write a cookie for. */
export interface Grant {
  /** The secret half of the token (base64url), for the cookie only. */
  secret: string;
  /** SHA-256 of the secret, what the store keeps. */
  verifier: string;
  /** Each stored property's JSON text as last read or written; undefined while not in the store yet. */
  stored: Map<string, string> | undefined;
}

/** What StowageStore.get puts on the data it returns, under STORED. */
export interface StoredTexts {
  /** The record's verifier, to check the cookie's secret against. */
  verifier: string;
  /** Each property's JSON text as stored (`cookie` included). */
  texts: Map<string, string>;
}

/** The symbol under which StowageStore.get puts `StoredTexts` on the data it returns. */
export const STORED = Symbol("stowage.stored");

const GRANTS = Symbol("stowage.grants");

interface Granting {
  [GRANTS]?: Map<string, Grant>;
}

/** The grants of one request (created on first use). */
export function grantsOf(req: object): Map<string, Grant> {
  const holder = req as Granting;
  let grants = holder[GRANTS];
  if (grants === undefined) {
    grants = new Map();
    holder[GRANTS] = grants;
  }
  return grants;
}

/** The grant a request holds for `sid`, if any. */
export function grantOf(req: object | undefined, sid: string): Grant | undefined {
  return req === undefined ? undefined : (req as Granting)[GRANTS]?.get(sid);
}

/** Each own enumerable property's JSON text, as JSON.stringify would write it (undefined values left out). */
export function textsOf(data: object): Map<string, string> {
  const texts = new Map<string, string>();
  for (const key of Object.keys(data)) {
    const text = JSON.stringify((data as Record<string, unknown>)[key]);
    if (text !== undefined) texts.set(key, text);
  }
  return texts;
}

/** Told when a session is being written by `save`, so the middleware does not write it again at the end. */
export type SaveHook = (session: object) => void;

/** Each request's save hook, set by the middleware. */
export const cycles = new WeakMap<object, SaveHook>();
