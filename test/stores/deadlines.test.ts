import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type Deadline, Deadlines } from "../../src/stores/redis/deadlines.js";

const TIMEOUT = 20;

function reason(label: string): Error {
  return new Error(`${label} timed out`);
}

/** Tracks one operation; `outcome` settles with the rejection reason once it expires. */
function trackOne(deadlines: Deadlines, label: string): { deadline: Deadline; outcome: Promise<unknown> } {
  let deadline!: Deadline;
  const outcome = new Promise<unknown>((resolve) => {
    deadline = deadlines.track(resolve, label);
  });
  return { deadline, outcome };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("Deadlines", () => {
  it("rejects an operation still pending at its deadline and marks it expired", async () => {
    const deadlines = new Deadlines(TIMEOUT, reason);
    const { deadline, outcome } = trackOne(deadlines, "get");
    expect(deadline.expired).toBe(false);
    expect(((await outcome) as Error).message).toBe("get timed out");
    expect(deadline.expired).toBe(true);
    // Its caller was told it failed: a late settle must not report success.
    expect(deadlines.settle(deadline)).toBe(false);
    expect(deadlines.size).toBe(0);
  });

  it("never rejects settled operations, in or out of order", async () => {
    const deadlines = new Deadlines(TIMEOUT, reason);
    const rejected: string[] = [];
    const track = (label: string) => deadlines.track(() => rejected.push(label), label);
    const first = track("first");
    const { deadline: middle, outcome } = trackOne(deadlines, "middle");
    const last = track("last");
    expect(deadlines.settle(first)).toBe(true);
    expect(deadlines.settle(last)).toBe(true);
    expect(deadlines.settle(last)).toBe(true);
    // All three share the deadline; by the time the middle one expires the others would have too.
    await outcome;
    expect(middle.expired).toBe(true);
    expect(rejected).toEqual([]);
    expect(first.expired).toBe(false);
    expect(last.expired).toBe(false);
    expect(deadlines.size).toBe(0);
    expect(deadlines.armed).toBe(false);
  });

  it("re-arms for an operation tracked after the one its timer was set for", async () => {
    const deadlines = new Deadlines(TIMEOUT, reason);
    const early = deadlines.track(() => undefined, "early");
    expect(deadlines.settle(early)).toBe(true);
    // The timer still targets the settled entry's deadline; the later entry must expire all the same.
    await new Promise((resolve) => setTimeout(resolve, TIMEOUT / 2));
    const { deadline, outcome } = trackOne(deadlines, "late");
    expect(((await outcome) as Error).message).toBe("late timed out");
    expect(deadline.expired).toBe(true);
  });

  it("serves many operations with one timer and drops settled ones from the queue", async () => {
    const timers = vi.spyOn(globalThis, "setTimeout");
    const deadlines = new Deadlines(60_000, reason);
    const tracked = Array.from({ length: 1000 }, (_, i) => deadlines.track(() => undefined, `op${i}`));
    expect(timers).toHaveBeenCalledTimes(1);
    expect(deadlines.armed).toBe(true);
    expect(deadlines.size).toBe(1000);
    // Settling in order keeps the queue as short as what is in flight.
    for (const deadline of tracked.slice(0, 600)) deadlines.settle(deadline);
    expect(deadlines.size).toBe(400);
    for (const deadline of tracked.slice(600)) deadlines.settle(deadline);
    expect(deadlines.size).toBe(0);
    deadlines.track(() => undefined, "next");
    expect(timers).toHaveBeenCalledTimes(1);
  });

  it("its timer does not keep the process alive", async () => {
    const module = fileURLToPath(new URL("../../src/stores/redis/deadlines.ts", import.meta.url));
    // A child tracks an operation and has nothing else to do: it must exit before the deadline, so
    // the rejection never runs (a timer that held the process would print it, then exit).
    const code = [
      `import { Deadlines } from ${JSON.stringify(module)};`,
      "const deadlines = new Deadlines(5_000, () => new Error('late'));",
      "deadlines.track(() => console.log('rejected'), 'op');",
      "console.log(deadlines.armed ? 'armed' : 'idle');",
    ].join("\n");
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk;
    });
    child.stderr.on("data", (chunk: Buffer) => {
      err += chunk;
    });
    const exitCode = await new Promise<number | null>((resolve) => child.on("close", resolve));
    expect(err).toBe("");
    expect(exitCode).toBe(0);
    expect(out.trim()).toBe("armed");
  });
});
