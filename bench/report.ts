import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, totalmem } from "node:os";
import { fileURLToPath } from "node:url";

/** One line of a group's table. */
export interface Row {
  /** What was measured. */
  metric: string;
  /** stowage's figure, formatted. */
  stowage: string;
  /** The peer's figure, formatted, or "" when there is no peer. */
  peer: string;
  /** stowage ÷ peer, oriented so that higher is better for stowage. */
  ratio?: number;
  /** The target, as text ("≥ 1.2×", "≤ 50 ms"). */
  target?: string;
  /** Whether the target was met; undefined when there is no target. */
  met?: boolean;
}

/** What one group hands back to the runner. */
export interface GroupReport {
  /** Group name as given to `--only`. */
  group: string;
  /** Section title in RESULTS.md. */
  title: string;
  rows: Row[];
  /** Markdown paragraphs or bullets printed under the table. */
  notes: string[];
}

/** A throughput figure. */
export interface Rate {
  /** Who produced it (shown in the table). */
  label: string;
  /** Operations (or requests) per second. */
  perSecond: number;
}

const RESULTS = fileURLToPath(new URL("./RESULTS.md", import.meta.url));

/** Formats a rate: 1234567 → "1.23 M/s". */
export function formatRate(perSecond: number, unit = "op/s"): string {
  if (perSecond >= 1e6) return `${(perSecond / 1e6).toFixed(2)} M ${unit}`;
  if (perSecond >= 1e3) return `${(perSecond / 1e3).toFixed(1)} k ${unit}`;
  return `${perSecond.toFixed(0)} ${unit}`;
}

/** A row comparing two rates, with an optional minimum ratio. */
export function ratioRow(metric: string, ours: Rate, peer: Rate, minRatio?: number, unit = "op/s"): Row {
  const ratio = ours.perSecond / peer.perSecond;
  const row: Row = {
    metric,
    stowage: `${ours.label}: ${formatRate(ours.perSecond, unit)}`,
    peer: `${peer.label}: ${formatRate(peer.perSecond, unit)}`,
    ratio,
  };
  if (minRatio !== undefined) {
    row.target = `≥ ${minRatio}×`;
    row.met = ratio >= minRatio;
  }
  return row;
}

/** A row with an upper limit on stowage's own figure (a stall, a size). */
export function limitRow(metric: string, value: number, unit: string, max?: number, peer = ""): Row {
  const row: Row = { metric, stowage: `${round(value)} ${unit}`, peer };
  if (max !== undefined) {
    row.target = `≤ ${max} ${unit}`;
    row.met = value <= max;
  }
  return row;
}

/** A row that only records a figure. */
export function infoRow(metric: string, stowage: string, peer = ""): Row {
  return { metric, stowage, peer };
}

function round(value: number): string {
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
}

/** The machine a run happened on, as one line. */
export function machine(): string {
  let model = cpus()[0]?.model ?? "unknown CPU";
  try {
    const line = readFileSync("/proc/cpuinfo", "utf8")
      .split("\n")
      .find((l) => l.startsWith("model name"));
    if (line) model = line.slice(line.indexOf(":") + 1).trim();
  } catch {
    // Not Linux: os.cpus() already gave a model name.
  }
  const ram = (totalmem() / 2 ** 30).toFixed(1);
  return `${model}, ${availableParallelism()} cores, ${ram} GiB RAM, Node ${process.version}, ${process.platform}`;
}

function ratioText(row: Row): string {
  if (row.ratio === undefined) return "";
  // Two decimals, unless rounding would hide which side of the target the ratio is on.
  const short = row.ratio.toFixed(2);
  const target = row.target?.match(/[\d.]+/)?.[0];
  const hidden = row.met === false && target !== undefined && Number(short) >= Number(target);
  return `${hidden ? row.ratio.toFixed(3) : short}×`;
}

function metText(row: Row): string {
  return row.met === undefined ? "" : row.met ? "yes" : "NO";
}

/** Prints a group's table to stdout. */
export function printGroup(report: GroupReport): void {
  const head = ["metric", "stowage", "peer", "ratio", "target", "met"];
  const body = report.rows.map((r) => [
    r.metric,
    r.stowage,
    r.peer,
    ratioText(r),
    r.target ?? "",
    metText(r),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((line) => line[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ");
  console.log(`\n== ${report.title}`);
  console.log(line(head));
  console.log(line(widths.map((w) => "-".repeat(w))));
  for (const cells of body) console.log(line(cells));
}

function escapeCell(text: string): string {
  return text.replaceAll("|", "\\|");
}

function section(report: GroupReport, when: string, where: string): string {
  const lines = [
    `<!-- group:${report.group} -->`,
    `## ${report.title}`,
    "",
    `Measured ${when} on ${where}. Run alone: \`npm run bench -- --only ${report.group}\`.`,
    "",
    "| metric | stowage | peer | ratio | target | met |",
    "| --- | --- | --- | --- | --- | --- |",
    ...report.rows.map(
      (r) =>
        `| ${[r.metric, r.stowage, r.peer, ratioText(r), r.target ?? "", metText(r)].map(escapeCell).join(" | ")} |`,
    ),
    "",
    ...report.notes.flatMap((n) => [n, ""]),
    `<!-- /group:${report.group} -->`,
  ];
  return lines.join("\n");
}

function header(when: string, where: string): string {
  return [
    "# stowage benchmarks",
    "",
    "Figures from `npm run bench`, stowage side by side with its peers in one run, as ratios",
    "(stowage ÷ peer; above 1 means stowage is faster). Benchmarks are not tests: figures move with the",
    "machine and its load, so compare ratios, not absolute numbers. On a shared 2-core machine a ratio",
    "moves by about ±15% from run to run even with interleaved rounds; read one near its target as a tie.",
    'The "instructions" group counts user-space instructions per request under callgrind instead, which',
    "repeats within about 1% (node:http) to 2% (express): the figure to check a change to a request path against.",
    "A full run rewrites this file;",
    "`npm run bench -- --only <group>` rewrites only that group's section and keeps the others.",
    "",
    `Last written ${when} on: ${where}.`,
    "",
  ].join("\n");
}

/**
 * Writes bench/RESULTS.md. A full run regenerates the file; a partial run replaces the sections of the
 * groups it ran, keeps the other sections as they were, and appends sections that were missing.
 */
export function writeResults(reports: GroupReport[], order: readonly string[], full: boolean): string {
  const when = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  const where = machine();
  const sections = new Map<string, string>();
  if (!full && existsSync(RESULTS)) {
    const old = readFileSync(RESULTS, "utf8");
    for (const match of old.matchAll(/<!-- group:([\w-]+) -->[\s\S]*?<!-- \/group:\1 -->/g)) {
      sections.set(match[1]!, match[0]);
    }
  }
  for (const report of reports) sections.set(report.group, section(report, when, where));
  const names = [
    ...order.filter((g) => sections.has(g)),
    ...[...sections.keys()].filter((g) => !order.includes(g)),
  ];
  const text = `${header(when, where)}\n${names.map((g) => sections.get(g)).join("\n\n")}\n`;
  writeFileSync(RESULTS, text);
  return RESULTS;
}
