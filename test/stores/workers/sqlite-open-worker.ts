// Child process for the migration race: `node --import tsx sqlite-open-worker.ts <path> <startAt>`.
// Waits until the wall clock reaches startAt (so sibling processes open the new file together), opens the
// store, inserts one record and prints its id.
import { newId } from "../../../src/core/tokens.js";
import { SqliteStore } from "../../../src/stores/sqlite/index.js";

const [path, startAt] = process.argv.slice(2);
if (!path) throw new Error("usage: sqlite-open-worker.ts <path> <startAt>");
const wait = Number(startAt ?? 0) - Date.now();
if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
const store = new SqliteStore({ path, sweepIntervalMs: 0 });
const now = Date.now();
const id = newId();
await store.insert({
  id,
  verifier: newId(),
  version: 1,
  createdAt: now,
  rotatedAt: now,
  expiresAt: now + 3_600_000,
  idleExpiresAt: now + 3_600_000,
  level: 0,
  loginType: "unspecified",
  attributes: { pid: process.pid },
});
await store.close();
process.stdout.write(`${id}\n`);
