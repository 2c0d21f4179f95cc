// Child process for the multi-process update test:
// `node --import tsx postgres-update-worker.ts <url> <table> <id> <n>`.
// Runs n concurrent read-modify-write increments of attribute `count` on one record, each retrying on
// VERSION_CONFLICT after a jittered pause, then prints a JSON summary and exits 0.

import { incrementLoop } from "../../../src/conformance/increment.js";
import { PostgresStore } from "../../../src/stores/postgres/index.js";

const [connectionString, table, id, countArg] = process.argv.slice(2);
if (!connectionString || !table || !id)
  throw new Error("usage: postgres-update-worker.ts <url> <table> <id> <n>");
const n = Number(countArg ?? 100);
const store = new PostgresStore({ connectionString, table, sweepIntervalMs: 0, timeoutMs: 10_000 });

const started = Date.now();
const attempts = await Promise.all(Array.from({ length: n }, () => incrementLoop(store, id, "count", 200)));
await store.close();
const total = attempts.reduce((sum, a) => sum + a, 0);
process.stdout.write(`${JSON.stringify({ updates: n, attempts: total, ms: Date.now() - started })}\n`);
