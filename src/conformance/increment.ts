// No vitest import here: store workers run this loop in plain child processes.
import { StowageError } from "../core/errors.js";
import type { SessionStore } from "../core/store.js";

/**
 * The read-modify-write loop a session's `update` performs: read, commit with ifVersion, retry on
 * VERSION_CONFLICT after a short random pause. Returns how many attempts it took.
 */
export async function incrementLoop(
  store: SessionStore,
  id: string,
  key: string,
  maxBackoffMs = 50,
): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    const record = await store.get(id);
    if (!record) throw new Error("record vanished during the update loop");
    const current = record.attributes[key];
    const n = typeof current === "number" ? current : 0;
    try {
      await store.commit(id, { set: { [key]: n + 1 } }, { ifVersion: record.version });
      return attempt;
    } catch (error) {
      if (!(error instanceof StowageError) || error.code !== "VERSION_CONFLICT") throw error;
      // Full jitter with a growing cap spreads contenders (and other processes) apart.
      await new Promise((resolve) =>
        setTimeout(resolve, Math.random() * Math.min(maxBackoffMs, 2 ** Math.min(attempt, 8))),
      );
    }
  }
}
