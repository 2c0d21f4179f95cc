import { Bench } from "tinybench";

/** One micro benchmark: `fn` performs `batch` operations per call. */
export interface MicroTask {
  name: string;
  /** Operations one call of `fn` performs (a batch amortizes the timer and the await). */
  batch: number;
  fn: () => unknown;
  /** Runs after each call, outside the timed window (cleanup such as deleting what `fn` created). */
  afterEach?: () => unknown | Promise<unknown>;
}

/** How long each task runs per round (ms), how many rounds, and how long the first round warms up (ms). */
export interface MicroOptions {
  time?: number;
  rounds?: number;
  warmup?: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Runs tasks side by side and returns operations per second by task name. Tasks run in several short
 * rounds, the order reversed every other round, so drift in the machine's speed (a noisy neighbour) hits
 * every task alike; the figure is the median over rounds, so one disturbed round does not decide it.
 * The first round warms each task up long enough for V8 to optimize its path (a networked call reaches
 * its steady speed only after some 10^5 operations); later rounds warm up briefly, so a task does not
 * pay for the heap shape the task before it left behind. No forced GC between tasks: after a full
 * collection V8 starts again with a small young generation, and the next ~100 ms run slower.
 */
export async function measure(tasks: MicroTask[], options: MicroOptions = {}): Promise<Map<string, number>> {
  const { time = 300, rounds = 6, warmup = 1000 } = options;
  const samples = new Map<string, number[]>(tasks.map((t) => [t.name, []]));
  for (let round = 0; round < rounds; round++) {
    const bench = new Bench({
      time,
      warmupTime: round === 0 ? warmup : 100,
      // Minimum counts: a call can take 100 ms (1000 networked operations), and the time budgets above
      // are what should decide how long a task runs.
      warmupIterations: 2,
      iterations: 4,
      throws: true,
    });
    const ordered = round % 2 === 0 ? tasks : [...tasks].reverse();
    for (const task of ordered) {
      const after = task.afterEach;
      bench.add(task.name, task.fn, after ? { afterEach: async () => void (await after()) } : {});
    }
    await bench.run();
    for (const task of ordered) {
      const result = bench.getTask(task.name)?.result;
      if (!result || !("period" in result)) throw new Error(`benchmark ${task.name} did not complete`);
      samples.get(task.name)!.push((task.batch * 1000) / result.period);
    }
  }
  return new Map([...samples].map(([name, values]) => [name, median(values)]));
}

/**
 * A task body that keeps `concurrency` operations in flight (a closed loop: each worker starts its next
 * operation when the last one settles) until `total` have completed. `op` gets the worker's index, so
 * each worker can stay on its own session.
 */
export function inFlight(
  concurrency: number,
  total: number,
  op: (worker: number) => Promise<unknown>,
): () => Promise<void> {
  return async () => {
    let started = 0;
    const worker = async (w: number): Promise<void> => {
      while (started < total) {
        started++;
        await op(w);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  };
}
