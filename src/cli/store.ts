import type { Sessions } from "../core/manager.js";
import { createSessions } from "../index.js";
import { openStore } from "../stores/open.js";

/** Opens the store a URL names, runs `fn` with a manager on it, and always closes it. */
export async function usingStore<T>(url: string, fn: (sessions: Sessions) => Promise<T>): Promise<T> {
  const store = await openStore(url);
  const sessions = createSessions({ store });
  try {
    return await fn(sessions);
  } finally {
    await sessions.close();
  }
}
