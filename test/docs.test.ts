import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import ts from "typescript";
import { afterAll, expect, it } from "vitest";

// Every ```ts block of README.md and docs/ is type-checked against the built package, as a reader's own
// module would be: docs that drift from the API fail here. Needs the build (npm test builds first).
const ROOT = process.cwd();
const OUT = join(ROOT, ".docs-check");
afterAll(() => rmSync(OUT, { recursive: true, force: true }));

interface Block {
  source: string;
  line: number;
  code: string;
}

function blocks(): Block[] {
  const files = ["README.md", ...readdirSync(join(ROOT, "docs")).map((f) => `docs/${f}`)].filter((f) =>
    f.endsWith(".md"),
  );
  return files.flatMap((source) => {
    const text = readFileSync(join(ROOT, source), "utf8");
    return [...text.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => ({
      source,
      line: text.slice(0, match.index).split("\n").length + 1,
      code: match[1]!,
    }));
  });
}

it("every TypeScript code block in README.md and docs/ compiles under strict", () => {
  const found = blocks();
  expect(found.length).toBeGreaterThan(10);
  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(OUT, { recursive: true });
  // The store a guide's reader writes themselves ("./my-store.js"), stood in by one of stowage's own.
  writeFileSync(join(OUT, "my-store.ts"), 'export { MemoryStore as MyStore } from "stowage";\n');
  const names = found.map((block, i) => {
    const file = join(OUT, `${block.source.replace(/[/.]/g, "_")}_${block.line}_${i}.ts`);
    // Each block is a module of its own, so two blocks may declare the same names.
    writeFileSync(file, `${block.code}\nexport {};\n`);
    return file;
  });
  const config = ts.getParsedCommandLineOfConfigFile(
    join(ROOT, "tsconfig.json"),
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: () => {},
    },
  )!;
  const program = ts.createProgram(names, { ...config.options, noEmit: true });
  const problems = ts.getPreEmitDiagnostics(program).map((d) => {
    const at = d.file ? names.indexOf(d.file.fileName) : -1;
    const where =
      at >= 0 && d.start !== undefined
        ? `${found[at]!.source}:${found[at]!.line + d.file!.getLineAndCharacterOfPosition(d.start).line}`
        : (d.file?.fileName ?? "config");
    return `${where}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`;
  });
  expect(problems).toEqual([]);
}, 120_000);
