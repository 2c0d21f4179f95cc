// Child process for the cross-process events test:
// `node --import tsx postgres-publish-worker.ts <url> <table> <id>`.
// Publishes one `ended` event for <id> (stamped with the publish time) and exits.
import { PostgresStore } from "../../../src/stores/postgres/index.js";

const [connectionString, table, id] = process.argv.slice(2);
if (!connectionString || !table || !id)
  throw new Error("usage: postgres-publish-worker.ts <url> <table> <id>");
const store = new PostgresStore({ connectionString, table, sweepIntervalMs: 0 });
await store.publish({ type: "ended", id, userId: "worker", at: Date.now() });
await store.close();
