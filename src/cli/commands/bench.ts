import { randomBytes } from "node:crypto";
import type { Sessions } from "../../core/manager.js";
import type { Session } from "../../core/session.js";
import { type Io, parse, positiveInt, STORE_HELP } from "../args.js";
import { num } from "../format.js";
import { progress } from "../progress.js";
import { usingStore } from "../store.js";

export const summary = "time create / load / commit against a store";

export const help = `Usage: stowage bench [--count N] [--store URL]

Runs a quick in-process loop against the store: creates N signed-in sessions, loads
each by its token, then changes and commits each one, and prints ops/s per step.
The sessions belong to a throwaway user and are deleted afterwards.

  --count N      sessions per step (default 1000)
${STORE_HELP}`;

type Step = { name: string; ms: number };

/** `stowage bench` */
export async function run(argv: string[], io: Io): Promise<number> {
  const args = parse(argv, { count: { type: "string", short: "n" } }, { max: 0 });
  const count = positiveInt(args.values.count, "--count", 1000, 1_000_000);
  return usingStore(args.store, async (sessions) => {
    const user = `stowage-bench-${randomBytes(6).toString("base64url")}`;
    const bar = progress(io, "bench:", count * 3);
    const steps: Step[] = [];
    try {
      const tokens = await step(steps, "create", async () => create(sessions, user, count, bar.update));
      const loaded = await step(steps, "load", async () =>
        load(sessions, tokens, (i) => bar.update(count + i)),
      );
      await step(steps, "commit", async () => commit(sessions, loaded, (i) => bar.update(2 * count + i)));
    } finally {
      bar.stop();
      // Straight to the store: the bench sessions need no "ended" events.
      await sessions.store.deleteByUser(user);
    }
    io.out(`${sessions.store.name} store, ${num(count)} sessions per step`);
    for (const s of steps) {
      io.out(
        `${s.name.padEnd(7)} ${num((count * 1000) / Math.max(s.ms, 0.001)).padStart(10)} ops/s  (${num(s.ms)} ms)`,
      );
    }
    return 0;
  });
}

async function step<T>(steps: Step[], name: string, fn: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const result = await fn();
  steps.push({ name, ms: performance.now() - started });
  return result;
}

async function create(
  sessions: Sessions,
  user: string,
  count: number,
  tick: (i: number) => void,
): Promise<string[]> {
  const tokens: string[] = [];
  for (let i = 0; i < count; i++) {
    const session = sessions.create();
    session.login(user);
    session.set("counter", 0);
    await sessions.commit(session);
    tokens.push(session.token);
    tick(i + 1);
  }
  return tokens;
}

async function load(sessions: Sessions, tokens: string[], tick: (i: number) => void): Promise<Session[]> {
  const loaded: Session[] = [];
  for (const token of tokens) {
    const session = await sessions.load(token);
    if (!session) throw new Error("a session created by the bench did not load back");
    loaded.push(session);
    tick(loaded.length);
  }
  return loaded;
}

async function commit(sessions: Sessions, loaded: Session[], tick: (i: number) => void): Promise<void> {
  for (let i = 0; i < loaded.length; i++) {
    const session = loaded[i]!;
    session.set("counter", i + 1);
    await sessions.commit(session);
    tick(i + 1);
  }
}
