// Child process for the multi-process tests: loads one session by token through the public API and
// runs `count` parallel update()s of one key, then prints how many succeeded.
import { createSessions, openStore } from "../../src/index.js";

const [url, token, countArg, prefixOrTable] = process.argv.slice(2);
if (!url || !token || !countArg) {
  process.stderr.write("usage: update-worker <store-url> <token> <count> [prefix-or-table]\n");
  process.exit(2);
}
const options = url.startsWith("postgres") ? { table: prefixOrTable } : { prefix: prefixOrTable };
const store = await openStore(url, prefixOrTable ? options : {});
const sessions = createSessions<{ n: number }>({ store });
let done = 0;
await Promise.all(
  Array.from({ length: Number(countArg) }, async () => {
    const session = await sessions.load(token);
    if (!session) throw new Error("the session did not load");
    await session.update("n", (n) => (n ?? 0) + 1);
    done++;
  }),
);
process.stdout.write(`${JSON.stringify({ done, conflicts: sessions.stats().conflicts })}\n`);
await sessions.close();
