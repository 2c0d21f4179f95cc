// Child process for the cross-process event test: ends one session through the public API.
import { createSessions, openStore } from "../../src/index.js";

const [url, id, scope] = process.argv.slice(2);
if (!url || !id) {
  process.stderr.write("usage: end-worker <store-url> <session-id> [prefix-or-table]\n");
  process.exit(2);
}
const options = scope === undefined ? {} : url.startsWith("postgres") ? { table: scope } : { prefix: scope };
const sessions = createSessions({ store: await openStore(url, options) });
process.stdout.write(`${JSON.stringify({ ended: await sessions.end(id) })}\n`);
await sessions.close();
