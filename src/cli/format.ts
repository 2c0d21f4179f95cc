export { levelName } from "../core/record.js";

/** A timestamp as `YYYY-MM-DD HH:MM:SSZ` (UTC). */
export function time(ms: number | undefined): string {
  if (ms === undefined) return "-";
  return new Date(ms)
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d{3}Z$/, "Z");
}

/** Left-aligned columns separated by two spaces. */
export function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

/** Key/value lines with the keys padded to one width. */
export function facts(pairs: [string, string][]): string[] {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${k.padEnd(width)}  ${v}`);
}

/** Thousands separators, for counts and rates. */
export function num(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

/** First characters of a session id, as lists show it. */
export function prefix(id: string): string {
  return id.slice(0, 8);
}
