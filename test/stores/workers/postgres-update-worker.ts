// Child process for the multi-process update test:
// `node --import tsx postgres-update-worker.ts <url> <table> <id> <n>`.
// Runs n concurrent read-modify-write increments of attribute `count` on one record, each retrying on
// VERSION_CONFLICT after a jittered pause, then prints a JSON summary and exits 0.
import { isStowageError } from "../../../src/core/errors.js";
import { PostgresStore } from "../../../src/stores/postgres.js";

const [connectionString, table, id, countArg] = process.argv.slice(2);
if (!connectionString || !table || !id)
  throw new Error("usage: postgres-update-worker.ts <url> <table> <id> <n>");
const n = Number(countArg ?? 100);
const store = new PostgresStore({ connectionString, table, sweepIntervalMs: 0, timeoutMs: 10_000 });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function increment(): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    const record = await store.get(id!);
    if (!record) throw new Error("record vanished");
    const current = record.attributes.count;
    const next = (typeof current === "number" ? current : 0) + 1;
    try {
      await store.commit(id!, { set: { count: next } }, { ifVersion: record.version });
      return attempt;
    } catch (error) {
      if (!isStowageError(error, "VERSION_CONFLICT")) throw error;
      // Full jitter with a growing cap spreads the loops (and the other processes) apart.
      await sleep(Math.random() * Math.min(200, 2 ** Math.min(attempt, 8)));
    }
  }
}

const started = Date.now();
const attempts = await Promise.all(Array.from({ length: n }, increment));
await store.close();
const total = attempts.reduce((sum, a) => sum + a, 0);
process.stdout.write(`${JSON.stringify({ updates: n, attempts: total, ms: Date.now() - started })}\n`);
