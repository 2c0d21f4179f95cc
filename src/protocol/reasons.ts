// Why a connection closed or a resume was refused. Shared by the server and the browser client, so this
// module imports nothing.

/** Why a connection or a resume ended; see docs/resume-protocol.md for each one. */
export type CloseReason =
  | "closed"
  | "lost"
  | "replaced"
  | "revoked"
  | "expired"
  | "bad-proof"
  | "malformed"
  | "unavailable"
  | "refused"
  | "limit";

/** Reasons after which the client tries again (with backoff); after any other it stops. */
const RETRYABLE: ReadonlySet<string> = new Set(["closed", "lost", "unavailable"]);

/** True when a client should reconnect after `reason`; false when the session is over for it. */
export function isRetryable(reason: CloseReason): boolean {
  return RETRYABLE.has(reason);
}

/** WebSocket close codes (the 4000–4999 range is the application's), one per reason. */
export const CLOSE_CODES: Readonly<Record<Exclude<CloseReason, "lost">, number>> = {
  closed: 4000,
  replaced: 4001,
  revoked: 4002,
  expired: 4003,
  "bad-proof": 4004,
  malformed: 4005,
  unavailable: 4006,
  refused: 4007,
  limit: 4008,
};

/** The reason a WebSocket close code stands for; `lost` for any code that is not one of ours. */
export function reasonOfCode(code: number): CloseReason {
  for (const [reason, value] of Object.entries(CLOSE_CODES)) if (value === code) return reason as CloseReason;
  return "lost";
}
