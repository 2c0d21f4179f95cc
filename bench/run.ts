import { parseArgs } from "node:util";
import { type GroupReport, machine, printGroup, writeResults } from "./report.js";

/** Groups in the order a full run takes them; each module exports `run(): Promise<GroupReport>`. */
const GROUPS: Record<string, () => Promise<{ run(): Promise<GroupReport> }>> = {
  stores: () => import("./stores.js"),
  "memory-expiry": () => import("./memory-expiry.js"),
  redis: () => import("./redis.js"),
  postgres: () => import("./postgres.js"),
  http: () => import("./http.js"),
  instructions: () => import("./instructions.js"),
  connections: () => import("./connections.js"),
  tcp: () => import("./tcp.js"),
};
const ORDER = Object.keys(GROUPS);

const { values } = parseArgs({ options: { only: { type: "string", multiple: true } } });
const only = (values.only ?? []).flatMap((v) => v.split(",")).filter((v) => v !== "");
const unknown = only.filter((g) => !(g in GROUPS));
if (unknown.length > 0) {
  console.error(`unknown group ${unknown.join(", ")}; groups: ${ORDER.join(", ")}`);
  process.exit(2);
}
if (!(globalThis as { gc?: unknown }).gc) {
  console.error("run with --expose-gc (npm run bench does)");
  process.exit(2);
}

const selected = only.length > 0 ? ORDER.filter((g) => only.includes(g)) : ORDER;
console.log(`stowage bench: ${selected.join(", ")}\n${machine()}`);
const started = Date.now();
const reports: GroupReport[] = [];
for (const name of selected) {
  const t0 = Date.now();
  const module = await GROUPS[name]!();
  const report = await module.run();
  printGroup(report);
  console.log(`(${name}: ${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  reports.push(report);
}
const file = writeResults(reports, ORDER, only.length === 0);
console.log(`\nwrote ${file} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
// Drivers and servers that keep a handle open must not keep the run alive once the figures are written.
process.exit(0);
