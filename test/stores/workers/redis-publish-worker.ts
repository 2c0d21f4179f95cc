// Args: standalone|cluster <url or host:port,...> <prefix> <id>
// Publishes one `ended` event for <id> and prints { publishedAt } as JSON.
import { storeFromArgs } from "./redis-store-arg.js";

const [mode, target, prefix = "stowage:", id = ""] = process.argv.slice(2);
const store = storeFromArgs(mode, target, prefix);
try {
  const publishedAt = Date.now();
  await store.publish({ type: "ended", id, userId: "worker-user", at: publishedAt });
  process.stdout.write(`${JSON.stringify({ publishedAt })}\n`);
} finally {
  await store.close();
}
