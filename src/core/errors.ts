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

// Server-side trouble that may pass is 503; everything else a handler let escape is its own bug (500).
const STATUS: Partial<Record<StowageErrorCode, number>> = { STORE_UNAVAILABLE: 503, LOCK_TIMEOUT: 503 };

/** The one error type stowage throws; `code` says what went wrong. Messages never contain tokens or secrets. */
export class StowageError extends Error {
  /** Machine-readable reason. */
  readonly code: StowageErrorCode;
  /** HTTP status for a handler that lets this error escape (express, fastify and koa read it). */
  readonly status: number;

  constructor(code: StowageErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StowageError";
    this.code = code;
    this.status = STATUS[code] ?? 500;
  }

  /** The same as `status`, under the name some frameworks read. */
  get statusCode(): number {
    return this.status;
  }
}

/** True when `error` is a StowageError, optionally with the given code. */
export function isStowageError(error: unknown, code?: StowageErrorCode): error is StowageError {
  return error instanceof StowageError && (code === undefined || error.code === code);
}

const REPLACED = "the connection was replaced by a resume elsewhere";

/** What a write from a connection session's replaced holder gets: a resume elsewhere took the session. */
export function replacedError(): StowageError {
  return new StowageError("SESSION_ENDED", REPLACED);
}

/** True for the error of `replacedError`: the session lives on, held by another connection. */
export function isReplacedError(error: unknown): boolean {
  return isStowageError(error, "SESSION_ENDED") && error.message === REPLACED;
}
