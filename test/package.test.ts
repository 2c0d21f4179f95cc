import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";

const pkg = JSON.parse(readFileSync("package.json", "utf8")) as {
  exports: Record<string, string | { types: string; import: string }>;
  bin: Record<string, string>;
};
const out = mkdtempSync(join(tmpdir(), "stowage-build-"));
afterAll(() => rmSync(out, { recursive: true, force: true }));

it("the build emits JavaScript and types for every subpath export and the CLI", () => {
  execFileSync(process.execPath, [
    "node_modules/typescript/bin/tsc",
    "-p",
    "tsconfig.build.json",
    "--outDir",
    out,
  ]);
  const inOut = (path: string) => join(out, path.replace(/^\.\/dist\//, ""));
  const entries = Object.entries(pkg.exports).filter(([, v]) => typeof v === "object");
  expect(entries.length).toBeGreaterThanOrEqual(8);
  for (const [name, target] of entries) {
    const { types, import: js } = target as { types: string; import: string };
    expect(existsSync(inOut(js)), `${name} → ${js}`).toBe(true);
    expect(existsSync(inOut(types)), `${name} → ${types}`).toBe(true);
  }
  const cli = inOut(pkg.bin.stowage!);
  expect(readFileSync(cli, "utf8").startsWith("#!/usr/bin/env node")).toBe(true);

  // The published types carry the public API only: no internal member, no internal marker.
  const types = declarations(out).map((file) => readFileSync(file, "utf8"));
  const all = types.join("\n");
  expect(all).not.toContain("@internal");
  const manager = readFileSync(join(out, "core/manager.d.ts"), "utf8");
  const lazy = readFileSync(join(out, "http/core.d.ts"), "utf8");
  const session = readFileSync(join(out, "core/session.d.ts"), "utf8");
  for (const name of ["loadNow(", "commitNow("]) expect(manager, name).not.toContain(name);
  for (const name of ["keeps(", "settled(", "get started()"]) expect(lazy, name).not.toContain(name);
  expect(session).not.toContain("[state]");
  // One name per thing: the manager's commit options and the store contract's are different types.
  const root = readFileSync(join(out, "index.d.ts"), "utf8");
  expect(root).toContain("SessionCommitOptions");
}, 120_000);

function declarations(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return declarations(path);
    return entry.name.endsWith(".d.ts") ? [path] : [];
  });
}
