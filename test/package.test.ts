import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
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
}, 120_000);
