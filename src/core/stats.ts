/** Counters since the manager was created (`sessions.stats()`). */
export interface SessionStats {
  /** Sessions written for the first time. */
  created: number;
  /** Tokens that loaded a live session. */
  loaded: number;
  /** Tokens that were not shaped like a token. */
  malformed: number;
  /** Well-formed tokens whose id names no session (or an alias past its grace). */
  unknown: number;
  /** Tokens whose id exists but whose secret is wrong. */
  forged: number;
  /** Tokens of a session past its absolute or idle expiry. */
  expired: number;
  /** Sessions ended here (end, logout, endAllForUser). */
  ended: number;
  /** Ids regenerated (login, logout, rotation, explicit). */
  regenerated: number;
  /** Commits and updates that met a version conflict and retried. */
  conflicts: number;
}
