// Child process for the multi-process update test:
// `node --import tsx sqlite-update-worker.ts <path> <id> <n> [startAt]`.
// Waits until the wall clock reaches startAt (so sibling processes contend for real), then runs n concurrent
// read-modify-write increments of attribute `count` on one record, each retrying on VERSION_CONFLICT after
// a jittered pause, then prints a JSON summary and exits 0.

import { incrementLoop } from "../../../src/conformance/increment.js";
import { SqliteStore } from "../../../src/stores/sqlite/index.js";

const [path, id, countArg, startAt] = process.argv.slice(2);
if (!path || !id) throw new Error("usage: sqlite-update-worker.ts <path> <id> <n>");
const n = Number(countArg ?? 100);
const store = new SqliteStore({ path, sweepIntervalMs: 0 });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
// Open (and migrate) before the start line, so the contended part is the updates alone.
await store.get(id);
await sleep(Number(startAt ?? 0) - Date.now());

const started = Date.now();
const attempts = await Promise.all(Array.from({ length: n }, () => incrementLoop(store, id, "count")));
await store.close();
const total = attempts.reduce((sum, a) => sum + a, 0);
process.stdout.write(`${JSON.stringify({ updates: n, attempts: total, ms: Date.now() - started })}\n`);
