import { type Io, parse, STORE_HELP } from "../args.js";
import { countRecords } from "../count.js";
import { facts, num } from "../format.js";
import { usingStore } from "../store.js";

export const summary = "count the sessions in a store";

export const help = `Usage: stowage stats [--store URL]

Counts live and expired sessions and signed-in users where the store can tell (SQLite,
PostgreSQL; memory: records held), then the session manager's counters for this run.

${STORE_HELP}`;

/** `stowage stats` */
export async function run(argv: string[], io: Io): Promise<number> {
  const args = parse(argv, {}, { max: 0 });
  return usingStore(args.store, async (sessions) => {
    const counts = await countRecords(sessions.store, Date.now());
    const pairs: [string, string][] = [["store", sessions.store.name]];
    if (counts.live !== undefined) pairs.push(["live sessions", num(counts.live)]);
    if (counts.expired !== undefined) pairs.push(["expired, not swept", num(counts.expired)]);
    if (counts.users !== undefined) pairs.push(["signed-in users", num(counts.users)]);
    if (counts.held !== undefined) pairs.push(["records held", num(counts.held)]);
    if (pairs.length === 1)
      pairs.push(["sessions", `not countable: ${sessions.store.name} keeps no index of all sessions`]);
    for (const line of facts(pairs)) io.out(line);
    const counters = Object.entries(sessions.stats()).map(([k, v]) => `${k} ${num(v)}`);
    io.out("");
    io.out(`manager counters (this run): ${counters.join(", ")}`);
    return 0;
  });
}
