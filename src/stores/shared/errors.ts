import { StowageError } from "../../core/errors.js";

// The errors every store raises for the contract's outcomes, worded once so callers and logs see the
// same text whichever store is behind them. Store-specific failures (timeouts, driver errors) name the
// store in their own words through `unavailable`.

/** The id names no live record (it never existed, ended, expired, or is a rotation alias). */
export function ended(): StowageError {
  return new StowageError("SESSION_ENDED", "no live session with this id");
}

/** `ifVersion` did not match, or a rename holds the record: read it again and retry. */
export function conflict(): StowageError {
  return new StowageError("VERSION_CONFLICT", "the session changed since it was read");
}

/** An atomic operation gave up after the record changed under it on every attempt. */
export function stillChanging(what: string): StowageError {
  return new StowageError("VERSION_CONFLICT", `the session kept changing during ${what}`);
}

/** The id, or a live rotation alias of it, is taken. */
export function duplicate(cause?: unknown): StowageError {
  return new StowageError(
    "DUPLICATE_ID",
    "a session or live alias with this id already exists",
    cause === undefined ? undefined : { cause },
  );
}

/** The store cannot serve the call; `store` names it (`Redis`, `SQLite`, ...). */
export function unavailable(store: string, message: string, cause?: unknown): StowageError {
  return new StowageError(
    "STORE_UNAVAILABLE",
    `${store}: ${message}`,
    cause === undefined ? undefined : { cause },
  );
}

/** The store was closed. */
export function closed(store: string): StowageError {
  return unavailable(store, "the store is closed");
}
