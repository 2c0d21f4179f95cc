// Run by memory.test.ts as a child process: a store holding a record, an alias, a lock and a subscriber
// must not keep the process alive once the script's own work is done.
import type { SessionRecord } from "../../src/core/record.js";
import { newId } from "../../src/core/tokens.js";
import { MemoryStore } from "../../src/stores/memory/index.js";

const now = Date.now();
const record = (): SessionRecord => ({
  id: newId(),
  verifier: `${newId()}${newId()}`.slice(0, 43),
  version: 1,
  createdAt: now,
  rotatedAt: now,
  expiresAt: now + 3_600_000,
  idleExpiresAt: now + 3_600_000,
  userId: "child",
  level: 0,
  loginType: "unspecified",
  attributes: { a: 1 },
});

const store = new MemoryStore({ sweepIntervalMs: 50 });
const old = record();
await store.insert(old);
await store.rename(old.id, record(), { graceMs: 3_600_000 });
await store.lock(old.id, 3_600_000);
await store.subscribe(() => {});
await store.publish({ type: "ended", id: old.id, at: now });
process.stdout.write("ready\n");
