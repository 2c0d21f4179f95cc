// A million small sessions expiring at the same moment: how much heap they take, and how long the
// MemoryStore's background expiry blocks the event loop while it removes them. The runner measures in
// child processes (one for stowage, one for express-session's MemoryStore), so these heaps never
// disturb the other groups or each other.
// Run alone: node --expose-gc --import tsx bench/memory-expiry.ts
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import session from "express-session";
import type { SessionRecord } from "stowage";
import { MemoryStore } from "stowage";
import { type GroupReport, infoRow, limitRow, printGroup } from "./report.js";

const COUNT = 1_000_000;
const MAX_STALL_MS = 50;
const CALIBRATION = 20_000;

function collect(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run with --expose-gc");
  gc();
  gc();
  // ArrayBuffer contents (the expiry heap's Float64Array) live outside the JS heap: counted too.
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return heapUsed + arrayBuffers;
}

/** Records with distinct ids and verifiers, as real ones have. */
function* records(count: number, expiresAt: number): Generator<SessionRecord> {
  const random = randomBytes(count * 48);
  const now = Date.now();
  for (let i = 0; i < count; i++) {
    yield {
      id: random.toString("base64url", i * 48, i * 48 + 16),
      verifier: random.toString("base64url", i * 48 + 16, i * 48 + 48),
      version: 1,
      createdAt: now,
      rotatedAt: now,
      expiresAt,
      idleExpiresAt: expiresAt,
      level: 0,
      loginType: "unspecified",
      attributes: { theme: "dark", visits: i, lang: "en" },
    };
  }
}

/** Inserts `ids.length` records and fills `ids` with their ids; returns the time taken. */
async function fill(store: MemoryStore, ids: string[], expiresAt: number): Promise<number> {
  const started = performance.now();
  let i = 0;
  for (const record of records(ids.length, expiresAt)) {
    ids[i++] = record.id;
    await store.insert(record);
  }
  return performance.now() - started;
}

/** Moves every record's idle expiry to `at`, so they all expire in the same millisecond. */
async function expireAllAt(store: MemoryStore, ids: string[], at: number): Promise<number> {
  const started = performance.now();
  for (const id of ids) await store.touch(id, at);
  return performance.now() - started;
}

/** Ticks every millisecond: the longest gap between ticks, GC pauses, and when the store emptied. */
function probe(store: MemoryStore) {
  let last = performance.now();
  let longestGap = 0;
  let longestGc = 0;
  let firstRemovalAt = 0;
  let emptyAt = 0;
  const gcObserver = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) longestGc = Math.max(longestGc, entry.duration);
  });
  gcObserver.observe({ entryTypes: ["gc"] });
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  histogram.enable();
  // CPU time the process used during the longest gap: when it is much smaller than the gap, the thread
  // was waiting for a core (another process had it), not working.
  let lastCpu = process.cpuUsage();
  let longestGapCpu = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    const cpu = process.cpuUsage();
    if (now - last > longestGap) {
      longestGap = now - last;
      longestGapCpu = (cpu.user - lastCpu.user + cpu.system - lastCpu.system) / 1000;
    }
    last = now;
    lastCpu = cpu;
    if (firstRemovalAt === 0 && store.size < COUNT) firstRemovalAt = now;
    if (emptyAt === 0 && store.size === 0) emptyAt = now;
  }, 1);
  return {
    done: () => emptyAt !== 0,
    stop() {
      clearInterval(timer);
      histogram.disable();
      // Entries still queued for the callback would be lost by disconnect.
      for (const entry of gcObserver.takeRecords()) longestGc = Math.max(longestGc, entry.duration);
      gcObserver.disconnect();
      return {
        longestGap,
        longestGapCpu,
        longestGc,
        histogramMax: histogram.max / 1e6,
        firstRemovalAt,
        emptyAt,
      };
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs the benchmark in this process and returns its figures. */
async function measure(): Promise<GroupReport> {
  const far = Date.now() + 3_600_000;
  // Calibrate how long touching every record takes, so the common expiry moment comes after it.
  const calibration = new MemoryStore();
  const calibrationIds = new Array<string>(CALIBRATION).fill("");
  await fill(calibration, calibrationIds, far);
  const touchMsPerRecord = (await expireAllAt(calibration, calibrationIds, far)) / CALIBRATION;
  await calibration.close();

  // The id list is allocated before the baseline; its strings are the ones the store holds anyway.
  const ids = new Array<string>(COUNT).fill("");
  const before = collect();
  const store = new MemoryStore();
  const fillMs = await fill(store, ids, far);
  const heldBytes = collect() - before;

  const expiresAt = Date.now() + Math.ceil(touchMsPerRecord * COUNT * 3) + 1000;
  await expireAllAt(store, ids, expiresAt);
  if (Date.now() >= expiresAt || store.size !== COUNT)
    throw new Error("touching outlasted the expiry moment");
  ids.length = 0;

  await sleep(Math.max(0, expiresAt - Date.now() - 200));
  const watch = probe(store);
  const dueAt = performance.now() + (expiresAt - Date.now());
  while (!watch.done()) await sleep(50);
  const figures = watch.stop();
  const afterBytes = collect() - before;
  await store.close();

  return {
    group: "memory-expiry",
    title: `Stores (issue "Foundation"): MemoryStore, ${COUNT.toLocaleString("en")} sessions expiring at once`,
    rows: [
      infoRow("heap held by the sessions", `${(heldBytes / 2 ** 20).toFixed(0)} MiB`),
      infoRow("heap per session (3 attributes)", `${Math.round(heldBytes / COUNT)} B`),
      infoRow("insert rate", `${((COUNT / fillMs) * 1000).toFixed(0)} insert/s`),
      limitRow("longest event-loop stall during expiry (1 ms probe)", figures.longestGap, "ms", MAX_STALL_MS),
      infoRow("CPU time the process used during that longest gap", `${figures.longestGapCpu.toFixed(1)} ms`),
      infoRow("event-loop delay max (monitorEventLoopDelay)", `${figures.histogramMax.toFixed(1)} ms`),
      infoRow("longest GC pause during expiry", `${figures.longestGc.toFixed(1)} ms`),
      infoRow(
        "expiry duration (first removal to empty)",
        `${(figures.emptyAt - figures.firstRemovalAt).toFixed(0)} ms`,
      ),
      infoRow("due moment to empty (timer period 1 s)", `${(figures.emptyAt - dueAt).toFixed(0)} ms`),
      infoRow("heap left after expiry", `${(afterBytes / 2 ** 20).toFixed(1)} MiB`),
    ],
    notes: [
      "Expired records are removed by the store's unref'd timer in batches of at most 4 ms, yielding " +
        "(setImmediate) between batches; the stall figure includes any garbage-collection pause.",
    ],
  };
}

/** Heap that express-session's MemoryStore takes for COUNT sessions of the same three attributes. */
async function peerHeap(): Promise<number> {
  const before = collect();
  const store = new session.MemoryStore();
  const random = randomBytes(COUNT * 24);
  const expires = new Date(Date.now() + 3_600_000).toISOString();
  for (let i = 0; i < COUNT; i++) {
    const data = {
      cookie: { originalMaxAge: 3_600_000, expires, httpOnly: true, path: "/" },
      theme: "dark",
      visits: i,
      lang: "en",
    };
    store.set(random.toString("base64url", i * 24, i * 24 + 24), data as unknown as session.SessionData);
  }
  const held = collect() - before;
  // Used after the measurement, so the collector cannot free the store before it.
  store.clear();
  return held;
}

const run$ = promisify(execFile);

/** Runs `mode` of this file in a child Node process and returns what it printed last, parsed. */
async function child<T>(mode: string): Promise<T> {
  const file = fileURLToPath(import.meta.url);
  const { stdout } = await run$(process.execPath, ["--expose-gc", "--import", "tsx", file, mode], {
    maxBuffer: 1 << 20,
    timeout: 120_000,
  });
  return JSON.parse(stdout.trim().split("\n").at(-1)!) as T;
}

/** Group "memory-expiry": both measurements in child processes, stowage first. */
export async function run(): Promise<GroupReport> {
  const report = await child<GroupReport>("--json");
  const peerBytes = await child<number>("--peer");
  for (const row of report.rows) {
    if (row.metric === "heap per session (3 attributes)") {
      const ours = Number.parseInt(row.stowage, 10);
      const theirs = peerBytes / COUNT;
      row.peer = `express-session MemoryStore: ${Math.round(theirs)} B`;
      row.ratio = theirs / ours;
      // The performance issue's goal: no more heap per session than express-session.
      row.target = "≥ 1×";
      row.met = row.ratio >= 1;
    }
  }
  report.notes.push(
    "Heap per session: the ratio is express-session's bytes ÷ stowage's (above 1: stowage is smaller)." +
      " express-session's MemoryStore keeps each session as one JSON string (cookie included) and never" +
      " removes an expired one until it is read again. stowage keeps a record nobody used for a sweep" +
      " interval or two as one packed JSON string too (in use, it is an object again), plus its expiry heap.",
  );
  return report;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  if (process.argv.includes("--json")) console.log(JSON.stringify(await measure()));
  else if (process.argv.includes("--peer")) console.log(JSON.stringify(await peerHeap()));
  else printGroup(await measure());
}
