import type pg from "pg";
import { StowageError } from "../../core/errors.js";
import { unavailable } from "../shared/errors.js";

/**
 * Settles with `work`, or rejects with STORE_UNAVAILABLE after `ms`. pg's own timeouts cover the socket and
 * the server; this covers everything else (a pool queue that never drains, a half-open connection), so no
 * call can hang. A late rejection of `work` is absorbed here so it never surfaces as unhandled.
 */
export function within<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(unavailable("PostgreSQL", `${what} timed out after ${ms} ms`)), ms);
  });
  work.catch(() => undefined);
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** Checks a client out of the pool within `ms`; a client that arrives after the deadline goes straight back. */
export function connectWithin(pool: pg.Pool, ms: number): Promise<pg.PoolClient> {
  const pending = pool.connect();
  return within(pending, ms, "connect").catch((error: unknown) => {
    pending.then(
      (late) => late.release(),
      () => undefined,
    );
    throw error;
  });
}

// SQLSTATEs that mean the value was refused, not that the store failed: a NUL character in text or jsonb
// (22021, 22P05), bad text representation (22P02), a number out of range (22003), a NOT NULL or CHECK
// constraint (23502, 23514).
const INVALID_VALUE_STATES = new Set(["22021", "22P05", "22P02", "22003", "23502", "23514"]);

/** Maps anything a pg call threw to a StowageError; driver and network failures become STORE_UNAVAILABLE. */
export function toStowageError(error: unknown, what: string): StowageError {
  if (error instanceof StowageError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const detail = error instanceof Error ? `: ${error.message}` : "";
  if (typeof code === "string" && INVALID_VALUE_STATES.has(code)) {
    return new StowageError("INVALID_VALUE", `PostgreSQL: ${what} refused a value${detail}`, {
      cause: error,
    });
  }
  return unavailable("PostgreSQL", `${what} failed${detail}`, error);
}
