import { setTimeout as sleep } from "node:timers/promises";
import { isStowageError, replacedError, StowageError } from "./errors.js";
import { attributesBytes, serializeJson } from "./json.js";
import type { AcquireOptions, SessionLease } from "./lease.js";
import { OptionChecker } from "./options.js";
import type { JsonValue } from "./record.js";
import { forgetSizes, idleExpiry, type SessionState, setAttribute } from "./session-state.js";
import type { SessionStore } from "./store.js";

// The loops that retry against the store: the atomic read-modify-write of `update`, the wait for a
// lease, and the backoff between attempts that the commit engine's renames share.

/** What the loops need from the manager. */
export interface RetryHost {
  readonly store: SessionStore;
  readonly idleTimeout: number;
  readonly maxAttributesBytes: number;
  now(): number;
  /** Counts and reports one conflicting attempt, then waits (see `conflictPause`). */
  conflict(id: string, attempt: number, started: number): Promise<void>;
  /** Commits the session (a new one must be stored before it can be locked). */
  commit(s: SessionState): Promise<boolean>;
}

/** How long a loop keeps retrying conflicts before it gives up with VERSION_CONFLICT. */
const MAX_RETRY_MS = 30_000;

/**
 * The pause before attempt `attempt + 1`: full jitter under a ceiling that doubles up to 64 ms, so
 * contenders spread out and one of them wins each round. VERSION_CONFLICT once `started` is too long ago.
 */
export async function conflictPause(attempt: number, started: number): Promise<void> {
  if (Date.now() - started > MAX_RETRY_MS) {
    throw new StowageError("VERSION_CONFLICT", `gave up after ${attempt} conflicting attempts`);
  }
  const ceiling = Math.min(2 ** Math.min(attempt, 6), 64);
  await sleep(Math.random() * ceiling);
}

/** `Session.update`: read, apply `fn`, write with the read version; retried on conflict or a rename. */
export async function updateAttribute(
  host: RetryHost,
  s: SessionState,
  key: string,
  fn: (value: JsonValue | undefined) => unknown,
): Promise<JsonValue> {
  const started = Date.now();
  for (let attempt = 1; ; attempt++) {
    const fresh = await host.store.get(s.storedId!);
    if (!fresh) throw new StowageError("SESSION_ENDED", "the session has ended");
    if (s.generation !== undefined && fresh.connection?.generation !== s.generation) throw replacedError();
    s.storedId = fresh.id;
    const current = Object.hasOwn(fresh.attributes, key) ? fresh.attributes[key] : undefined;
    const value = JSON.parse(serializeJson(fn(current), key)) as JsonValue;
    const bytes = attributesBytes({ ...fresh.attributes, [key]: value });
    if (bytes > host.maxAttributesBytes) {
      throw new StowageError(
        "ATTRIBUTES_TOO_LARGE",
        `attributes would take ${bytes} bytes; the limit is ${host.maxAttributesBytes}`,
      );
    }
    const idle = idleExpiry(s, host.now(), host.idleTimeout);
    try {
      s.version = await host.store.commit(
        fresh.id,
        { set: { [key]: value }, meta: { idleExpiresAt: idle } },
        { ifVersion: fresh.version },
      );
    } catch (error) {
      // SESSION_ENDED may only mean that a rename moved the record since the read (the id asked for is
      // an alias now): the next read follows the alias, or finds the session really gone.
      if (!isStowageError(error, "VERSION_CONFLICT") && !isStowageError(error, "SESSION_ENDED")) throw error;
      await host.conflict(s.id, attempt, started);
      continue;
    }
    s.idleExpiresAt = idle;
    setAttribute(s, key, value);
    s.pending?.delete(key);
    forgetSizes(s);
    return value;
  }
}

/** `Session.acquire`: polls `store.lock` with a growing jittered pause until `waitMs` runs out. */
export async function acquireLease(
  host: RetryHost,
  s: SessionState,
  options: AcquireOptions,
): Promise<SessionLease> {
  const check = new OptionChecker("acquire", options, ["leaseMs", "waitMs"]);
  const leaseMs = check.ms("leaseMs", 10_000);
  const waitMs = check.ms("waitMs", 5_000, { zero: true });
  if (s.storedId === undefined) {
    s.dirty = true;
    await host.commit(s);
  }
  const deadline = Date.now() + waitMs;
  for (let attempt = 1; ; attempt++) {
    const lock = await host.store.lock(s.storedId!, leaseMs);
    if (lock) {
      let released = false;
      const lease: SessionLease = {
        fence: lock.fence,
        release: async () => {
          if (released) return;
          released = true;
          if (s.lease === lease) s.lease = undefined;
          await lock.release();
        },
        [Symbol.asyncDispose]: () => lease.release(),
      };
      s.lease = lease;
      return lease;
    }
    if (Date.now() >= deadline) throw new StowageError("LOCK_TIMEOUT", "the session lease stayed busy");
    await sleep(Math.min(5 * attempt, 50) * (0.5 + Math.random()));
  }
}
