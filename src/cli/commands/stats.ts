import type { Sessions } from "../../core/manager.js";
import { type Io, parse, STORE_HELP, UsageError } from "../args.js";
import { countRecords } from "../count.js";
import { facts, num } from "../format.js";
import { usingStore } from "../store.js";

export const summary = "count the sessions in a store";

export const help = `Usage: stowage stats [--watch] [--interval SECONDS] [--store URL]

Counts live and expired sessions and signed-in users where the store can tell (SQLite,
PostgreSQL; memory: records held), then the session manager's counters for this run.

  --watch            count again every interval until Ctrl-C: redrawn in place on a
                     terminal, one block per count otherwise
  --interval SECONDS with --watch, how often (default 2)
${STORE_HELP}`;

/** `stowage stats [--watch]` */
export async function run(argv: string[], io: Io): Promise<number> {
  const args = parse(argv, { watch: { type: "boolean" }, interval: { type: "string" } }, { max: 0 });
  const watch = args.values.watch === true;
  if (!watch && args.values.interval !== undefined) throw new UsageError("--interval goes with --watch");
  const interval = args.values.interval === undefined ? 2 : Number(args.values.interval);
  if (!Number.isFinite(interval) || interval < 0.1 || interval > 86_400) {
    throw new UsageError("--interval needs a number of seconds from 0.1 to 86400");
  }
  return usingStore(args.store, async (sessions) => {
    if (!watch) {
      for (const line of await report(sessions)) io.out(line);
      return 0;
    }
    let stopped = false;
    let wake: (() => void) | undefined;
    const stop = () => {
      stopped = true;
      wake?.();
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    try {
      while (!stopped) {
        const lines = await report(sessions);
        if (io.outTty) io.clearScreen();
        for (const line of [
          `stowage stats, every ${interval}s (${new Date().toISOString()}); Ctrl-C stops`,
          "",
          ...lines,
        ])
          io.out(line);
        if (!io.outTty) io.out("");
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, interval * 1000);
        });
      }
    } finally {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
    }
    return 0;
  });
}

/** The counts the store can give, then the manager's counters. */
async function report(sessions: Sessions): Promise<string[]> {
  const lines: string[] = [];
  {
    const counts = await countRecords(sessions.store, Date.now());
    const pairs: [string, string][] = [["store", sessions.store.name]];
    if (counts.live !== undefined) pairs.push(["live sessions", num(counts.live)]);
    if (counts.expired !== undefined) pairs.push(["expired, not swept", num(counts.expired)]);
    if (counts.users !== undefined) pairs.push(["signed-in users", num(counts.users)]);
    if (counts.held !== undefined) pairs.push(["records held", num(counts.held)]);
    if (pairs.length === 1)
      pairs.push(["sessions", `not countable: ${sessions.store.name} keeps no index of all sessions`]);
    lines.push(...facts(pairs));
    const counters = Object.entries(sessions.stats()).map(([k, v]) => `${k} ${num(v)}`);
    lines.push("", `manager counters (this run): ${counters.join(", ")}`);
  }
  return lines;
}
