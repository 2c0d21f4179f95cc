/** Every failure stowage raises carries one of these codes. */
export type StowageErrorCode =
  | "STORE_UNAVAILABLE"
  | "VERSION_CONFLICT"
  | "DUPLICATE_ID"
  | "SESSION_ENDED"
  | "ATTRIBUTES_TOO_LARGE"
  | "INVALID_VALUE"
  | "LOCK_TIMEOUT"
  | "CONFIG_INVALID";

/** The one error type stowage throws; `code` says what went wrong. Messages never contain tokens or secrets. */
export class StowageError extends Error {
  /** Machine-readable reason. */
  readonly code: StowageErrorCode;

  constructor(code: StowageErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StowageError";
    this.code = code;
  }
}

/** True when `error` is a StowageError, optionally with the given code. */
export function isStowageError(error: unknown, code?: StowageErrorCode): error is StowageError {
  return error instanceof StowageError && (code === undefined || error.code === code);
}
