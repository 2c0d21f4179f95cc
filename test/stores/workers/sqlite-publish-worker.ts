// Child process for the cross-process events test: `node --import tsx sqlite-publish-worker.ts <path> <id>`.
// Publishes one `revoked` event for <id> on the shared file and exits.
import { SqliteStore } from "../../../src/stores/sqlite/index.js";

const [path, id] = process.argv.slice(2);
if (!path || !id) throw new Error("usage: sqlite-publish-worker.ts <path> <id>");
const store = new SqliteStore({ path, sweepIntervalMs: 0 });
await store.publish({ type: "revoked", id, userId: "worker", at: Date.now() });
await store.close();
