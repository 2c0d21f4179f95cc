// Args: standalone|cluster <url or host:port,...> <prefix> <id> <count>
// Runs <count> parallel read-modify-write increments of attribute `n` of session <id>: get, commit with
// ifVersion, retry on VERSION_CONFLICT after a jittered backoff. Prints { attempts, ms } as JSON.
import { isStowageError } from "../../../src/core/errors.js";
import { storeFromArgs } from "./redis-store-arg.js";

const [mode, target, prefix = "stowage:", id = "", countArg = "100"] = process.argv.slice(2);
const store = storeFromArgs(mode, target, prefix);
let attempts = 0;

async function increment(): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    attempts++;
    const record = await store.get(id);
    if (!record) throw new Error("session vanished");
    const n = typeof record.attributes.n === "number" ? record.attributes.n : 0;
    try {
      await store.commit(id, { set: { n: n + 1 } }, { ifVersion: record.version });
      return;
    } catch (error) {
      if (!isStowageError(error, "VERSION_CONFLICT")) throw error;
      const ceiling = Math.min(100, 2 ** Math.min(attempt, 7));
      await new Promise((resolve) => setTimeout(resolve, Math.random() * ceiling));
    }
  }
}

const started = performance.now();
try {
  await Promise.all(Array.from({ length: Number(countArg) }, () => increment()));
  process.stdout.write(`${JSON.stringify({ attempts, ms: Math.round(performance.now() - started) })}\n`);
} finally {
  await store.close();
}
