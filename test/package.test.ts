import { execFile } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, expect, it } from "vitest";

interface Target {
  types: string;
  default: string;
}
const pkg = JSON.parse(readFileSync("package.json", "utf8")) as {
  exports: Record<string, string | { import: Target; require: Target }>;
  bin: Record<string, string>;
};
/** Every file an export condition names: ESM and CommonJS, JavaScript and types. */
const exportedFiles = Object.entries(pkg.exports).flatMap(([name, target]) =>
  typeof target === "object"
    ? [target.import.default, target.import.types, target.require.default, target.require.types].map(
        (file) => [name, file] as const,
      )
    : [],
);
// Asynchronous on purpose: a child run with execFileSync blocks the test worker, and two tsc builds in a
// row on a busy 2-core machine outlast vitest's 60 s deadline for the worker's own progress reports.
const run = promisify(execFile);
/** For the tests that run tsc or npm: each takes tens of seconds on a busy 2-core machine. */
const SLOW = 240_000;
/** Runs this project's tsc; it exits non-zero, with every error on stdout, when the compile fails. */
const tsc = (...args: string[]) =>
  run(process.execPath, [join(process.cwd(), "node_modules/typescript/bin/tsc"), ...args]);
const out = mkdtempSync(join(tmpdir(), "stowage-build-"));
afterAll(() => rmSync(out, { recursive: true, force: true }));

it(
  "the build emits JavaScript and types for every subpath export and the CLI",
  async () => {
    await tsc("-p", "tsconfig.build.json", "--outDir", out);
    await tsc("-p", "tsconfig.cjs.json", "--outDir", join(out, "cjs"));
    await run(process.execPath, ["scripts/finish-cjs.mjs", join(out, "cjs")]);
    const inOut = (path: string) => join(out, path.replace(/^\.\/dist\//, ""));
    expect(exportedFiles.length).toBeGreaterThanOrEqual(4 * 9);
    for (const [name, file] of exportedFiles) expect(existsSync(inOut(file)), `${name} → ${file}`).toBe(true);
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
    expect(readFileSync(join(out, "cjs/index.d.ts"), "utf8")).toContain("SessionCommitOptions");
    expect(root).toContain("SessionCommitOptions");
  },
  SLOW,
);

function declarations(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return declarations(path);
    return entry.name.endsWith(".d.ts") ? [path] : [];
  });
}

it(
  "npm pack on a fresh clone (no dist/) ships the build of every subpath, the docs and the README",
  async () => {
    // A copy of the sources without dist/, as a fresh clone has them: prepack must build before packing.
    const clone = mkdtempSync(join(tmpdir(), "stowage-pack-"));
    try {
      for (const entry of [
        "src",
        "scripts",
        "docs",
        "README.md",
        "package.json",
        "tsconfig.json",
        "tsconfig.build.json",
        "tsconfig.cjs.json",
      ]) {
        cpSync(entry, join(clone, entry), { recursive: true });
      }
      symlinkSync(join(process.cwd(), "node_modules"), join(clone, "node_modules"));
      let listing: string;
      try {
        ({ stdout: listing } = await run("npm", ["pack", "--dry-run", "--json"], {
          cwd: clone,
          encoding: "utf8",
        }));
      } catch (error) {
        // tsc reports on stdout.
        throw new Error(`npm pack failed: ${(error as { stdout?: string }).stdout ?? ""}`);
      }
      const files = new Set(
        (JSON.parse(listing) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path),
      );
      for (const [, file] of exportedFiles) expect(files.has(file.replace(/^\.\//, "")), file).toBe(true);
      expect(files.has("dist/cjs/package.json")).toBe(true);
      expect(files.has(pkg.bin.stowage!.replace(/^\.\//, ""))).toBe(true);
      expect(files.has("README.md")).toBe(true);
      expect(files.has("docs/internals.md")).toBe(true);
    } finally {
      rmSync(clone, { recursive: true, force: true });
    }
  },
  SLOW,
);

it(
  "an app that uses only the memory store, stowage/ws and stowage/tcp compiles with skipLibCheck false and no driver's types",
  async () => {
    // A project of its own: the package as installed (its dist and package.json), Node's types, and no
    // @types/better-sqlite3, @types/pg, @types/ws or ioredis beside it.
    const app = mkdtempSync(join(tmpdir(), "stowage-types-"));
    try {
      const modules = join(app, "node_modules");
      cpSync("dist", join(modules, "stowage/dist"), { recursive: true });
      cpSync("package.json", join(modules, "stowage/package.json"));
      cpSync("node_modules/@types/node", join(modules, "@types/node"), { recursive: true });
      cpSync("node_modules/undici-types", join(modules, "undici-types"), { recursive: true });
      writeFileSync(join(app, "package.json"), '{"type":"module"}');
      const source = [
        'import { createSessions, MemoryStore } from "stowage";',
        'import { connect } from "stowage/client";',
        'import { createConnectionServer } from "stowage/ws";',
        'import { connectTcp, createTcpConnectionServer } from "stowage/tcp";',
        "const sessions = createSessions<{ cart: string[] }>({ store: new MemoryStore() });",
        "const session = sessions.create();",
        'session.set("cart", ["book"]);',
        "export const live = () => createConnectionServer({ sessions, port: 0 });",
        'export const client = () => connect("ws://127.0.0.1:1/live");',
        "export const tcp = () => createTcpConnectionServer({ sessions, port: 0 });",
        'export const tcpClient = () => connectTcp("tcp://127.0.0.1:1", { channel: true });',
      ].join("\n");
      writeFileSync(join(app, "app.ts"), source);
      const config = {
        compilerOptions: {
          strict: true,
          module: "nodenext",
          moduleResolution: "nodenext",
          target: "es2022",
          skipLibCheck: false,
          noEmit: true,
          types: ["node"],
        },
        files: ["app.ts"],
      };
      await run("sh", [
        "-c",
        `cat > ${join(app, "tsconfig.json")} <<'EOF_APP'\n${JSON.stringify(config)}\nEOF_APP`,
      ]);
      for (const driverTypes of ["better-sqlite3", "pg", "ws"])
        expect(existsSync(join(modules, "@types", driverTypes))).toBe(false);
      // tsc exits non-zero, with every error on stdout, if a published type needs what is not there.
      await tsc("-p", app);
    } finally {
      rmSync(app, { recursive: true, force: true });
    }
  },
  SLOW,
);

it(
  "stowage/express-session types express's Request with the documented augmentation and is a RequestHandler",
  async () => {
    await tsc("-p", "test/fixtures/drop-in-app");
  },
  SLOW,
);

it(
  "a registered manager types every adapter's session, and SessionRequest is a handler's parameter type with the documented augmentation",
  async () => {
    // test/fixtures/typed-app: its @ts-expect-error lines fail the compile if the types let a wrong key or
    // value through; its own tsconfig leaves express-session's types out, as an app without them has.
    await tsc("-p", "test/fixtures/typed-app");
  },
  SLOW,
);
