import { type Io, parse, STORE_HELP } from "../args.js";
import { num } from "../format.js";
import { progress } from "../progress.js";
import { usingStore } from "../store.js";

export const summary = "remove expired sessions now";

export const help = `Usage: stowage sweep [--store URL]

Removes every expired session, rotation alias and lapsed lock from the store now,
instead of waiting for the store's background sweep. Redis expires records by itself.

${STORE_HELP}`;

/** `stowage sweep` */
export async function run(argv: string[], io: Io): Promise<number> {
  const args = parse(argv, {}, { max: 0 });
  return usingStore(args.store, async (sessions) => {
    const started = Date.now();
    const bar = progress(io, "sweeping expired sessions…");
    let removed: number;
    try {
      removed = await sessions.sweep();
    } finally {
      bar.stop();
    }
    const ms = Date.now() - started;
    const note = sessions.store.name === "redis" ? " (Redis expires sessions by itself)" : "";
    io.out(`removed ${num(removed)} expired session${removed === 1 ? "" : "s"} in ${num(ms)} ms${note}`);
    return 0;
  });
}
