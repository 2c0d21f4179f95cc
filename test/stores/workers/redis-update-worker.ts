// Args: standalone|cluster <url or host:port,...> <prefix> <id> <count>
// Runs <count> parallel read-modify-write increments of attribute `n` of session <id>: get, commit with
// ifVersion, retry on VERSION_CONFLICT after a jittered backoff. Prints { attempts, ms } as JSON.
import { incrementLoop } from "../../../src/conformance/increment.js";
import { storeFromArgs } from "./redis-store-arg.js";

const [mode, target, prefix = "stowage:", id = "", countArg = "100"] = process.argv.slice(2);
const store = storeFromArgs(mode, target, prefix);
const started = performance.now();
try {
  const tries = await Promise.all(
    Array.from({ length: Number(countArg) }, () => incrementLoop(store, id, "n", 100)),
  );
  const attempts = tries.reduce((sum, a) => sum + a, 0);
  process.stdout.write(`${JSON.stringify({ attempts, ms: Math.round(performance.now() - started) })}\n`);
} finally {
  await store.close();
}
