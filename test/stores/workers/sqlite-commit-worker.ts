// Child process for the durability test: `node --import tsx sqlite-commit-worker.ts <path> <id>`.
// Commits one new attribute key per write and prints "<version> <i>" only after the commit was
// acknowledged; the parent SIGKILLs it mid-stream and checks every printed write survived.
import { SqliteStore } from "../../../src/stores/sqlite/index.js";

const [path, id] = process.argv.slice(2);
if (!path || !id) throw new Error("usage: sqlite-commit-worker.ts <path> <id>");
const store = new SqliteStore({ path, sweepIntervalMs: 0 });

// Bounded, so an orphan whose parent died cannot write forever.
for (let i = 0; i < 100_000; i++) {
  const version = await store.commit(id, { set: { [`k${i}`]: i } });
  process.stdout.write(`${version} ${i}\n`);
}
await store.close();
