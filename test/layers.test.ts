import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// The layering DESIGN.md and docs/internals.md describe, read from the sources themselves.
const SRC = resolve(dirname(fileURLToPath(import.meta.url)), "../src");

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

const IMPORT =
  /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;

/** Each module of src/ (relative path, no extension) and the modules of src/ it imports. */
const graph = new Map<string, string[]>();
for (const file of sources(SRC)) {
  const text = readFileSync(file, "utf8");
  const targets: string[] = [];
  for (const match of text.matchAll(IMPORT)) {
    const spec = match[1] ?? match[2]!;
    if (!spec.startsWith(".")) continue;
    targets.push(relative(SRC, resolve(dirname(file), spec)).replace(/\.js$/, ""));
  }
  graph.set(relative(SRC, file).replace(/\.ts$/, ""), targets);
}

/** The layer of a module: its first folder under src/ (or "root" for src/index.ts). */
function layer(module: string): string {
  return module.includes("/") ? module.slice(0, module.indexOf("/")) : "root";
}

/** What each layer may import besides itself. */
const ALLOWED: Record<string, string[]> = {
  core: [],
  stores: ["core"],
  http: ["core"],
  conformance: ["core"],
  metrics: ["core"],
  // The protocol imports nothing, so the browser client can load it; connections put it over core.
  protocol: [],
  client: ["protocol"],
  // stowage/tcp puts the client core on a TCP socket.
  connections: ["core", "http", "protocol", "client"],
  demo: ["root", "core", "http", "stores", "metrics", "connections"],
  cli: ["root", "core", "http", "stores", "demo"],
  root: ["core", "stores"],
  // The express-session drop-in: its API over core, the HTTP cookie reader and the memory store.
  "express-session": ["core", "http", "stores"],
};

describe("layers", () => {
  it("found the sources", () => {
    expect(graph.size).toBeGreaterThan(40);
    expect(graph.has("core/store")).toBe(true);
  });

  it("imports flow one way: core imports no other layer, stores and http import only core", () => {
    const wrong: string[] = [];
    for (const [module, targets] of graph) {
      const from = layer(module);
      for (const target of targets) {
        const to = layer(target);
        if (to !== from && !(ALLOWED[from] ?? []).includes(to)) wrong.push(`${module} -> ${target}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it("a concrete store imports only core, its own folder and stores/shared", () => {
    const wrong: string[] = [];
    for (const [module, targets] of graph) {
      const store = /^stores\/(memory|sqlite|redis|postgres)\//.exec(module)?.[1];
      if (store === undefined) continue;
      for (const target of targets) {
        const ok =
          target.startsWith("core/") ||
          target.startsWith(`stores/${store}/`) ||
          target.startsWith("stores/shared/");
        if (!ok) wrong.push(`${module} -> ${target}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it("the client loads in a browser: nothing it reaches imports a Node built-in or a package", () => {
    const reached = new Set<string>();
    const visit = (module: string) => {
      if (reached.has(module)) return;
      reached.add(module);
      for (const target of graph.get(module) ?? []) visit(target);
    };
    visit("client/index");
    expect([...reached].sort()).toEqual(["client/index", "protocol/frames", "protocol/reasons"]);
    const bare: string[] = [];
    for (const module of reached) {
      const text = readFileSync(join(SRC, `${module}.ts`), "utf8");
      for (const match of text.matchAll(IMPORT)) {
        const spec = match[1] ?? match[2]!;
        if (!spec.startsWith(".")) bare.push(`${module} -> ${spec}`);
      }
    }
    expect(bare).toEqual([]);
  });

  it("no import cycles", () => {
    const cycles: string[] = [];
    const state = new Map<string, "open" | "done">();
    const path: string[] = [];
    const visit = (module: string) => {
      if (state.get(module) === "done") return;
      if (state.get(module) === "open") {
        cycles.push([...path.slice(path.indexOf(module)), module].join(" -> "));
        return;
      }
      state.set(module, "open");
      path.push(module);
      for (const target of graph.get(module) ?? []) visit(target);
      path.pop();
      state.set(module, "done");
    };
    for (const module of graph.keys()) visit(module);
    expect(cycles).toEqual([]);
  });
});
