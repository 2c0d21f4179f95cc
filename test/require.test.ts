import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";

// Real CommonJS in a plain node process (not vitest's module loader), from a file outside the package
// that names it by its package name, as an application's require() would. Needs the build (npm test
// builds first).
const dir = mkdtempSync(join(tmpdir(), "stowage-require-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(source: string): Promise<string> {
  const file = join(dir, `check-${Math.random().toString(36).slice(2)}.cjs`);
  writeFileSync(file, source);
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [file], { cwd: process.cwd(), timeout: 60_000 }, (error, stdout, stderr) =>
      error ? reject(new Error(`${stdout}\\n${stderr}`)) : resolve(stdout),
    );
  });
}

it("require() of every subpath works on this Node, and the CommonJS build really works", async () => {
  const out = await run(`
const assert = require("node:assert/strict");
const { createRequire } = require("node:module");
// Resolve from the project root, where node_modules and the package's own exports are.
const load = createRequire(${JSON.stringify(join(process.cwd(), "package.json"))});
const subpaths = ["stowage", "stowage/sqlite", "stowage/redis", "stowage/postgres", "stowage/http",
  "stowage/express", "stowage/fastify", "stowage/hono", "stowage/conformance", "stowage/prometheus",
  "stowage/opentelemetry", "stowage/ws", "stowage/tcp", "stowage/express-session", "stowage/client"];
const names = {};
for (const name of subpaths) {
  const path = load.resolve(name);
  assert.ok(path.includes("/dist/cjs/"), name + " resolved to " + path);
  names[name] = Object.keys(load(name)).sort();
}
(async () => {
  const { createSessions, StowageError, openStore } = load("stowage");
  const { SqliteStore } = load("stowage/sqlite");
  const sessions = createSessions({ store: new SqliteStore({ path: ":memory:" }) });
  const session = sessions.create();
  session.set("n", 1);
  await session.save();
  const again = await sessions.load(session.token);
  assert.equal(again.get("n"), 1);
  assert.ok(new StowageError("CONFIG_INVALID", "x") instanceof Error);
  const memory = await openStore("memory:");
  assert.equal(memory.name, "memory");
  await memory.close();
  await sessions.close();
  // express-session's CommonJS shape: require() gives the middleware factory, its classes on it.
  const expressSession = load("stowage/express-session");
  assert.equal(typeof expressSession, "function");
  assert.equal(typeof expressSession({ resave: false, saveUninitialized: false }), "function");
  assert.ok(new expressSession.MemoryStore() instanceof expressSession.Store);
  console.log(JSON.stringify(names));
})().catch((error) => { console.error(error); process.exit(1); });
`);
  const names = JSON.parse(out) as Record<string, string[]>;
  expect(names.stowage).toContain("createSessions");
  expect(names["stowage/sqlite"]).toEqual(["SqliteStore"]);
  expect(names["stowage/redis"]).toEqual(["RedisStore"]);
  expect(names["stowage/postgres"]).toEqual(["PostgresStore"]);
  expect(names["stowage/http"]).toContain("withSessions");
  expect(names["stowage/express"]).toContain("sessionMiddleware");
  expect(names["stowage/fastify"]).toContain("sessionPlugin");
  expect(names["stowage/hono"]).toContain("sessionMiddleware");
  expect(names["stowage/conformance"]).toContain("runStoreConformance");
  expect(names["stowage/prometheus"]).toEqual(["collectMetrics"]);
  expect(names["stowage/opentelemetry"]).toEqual(["instrumentSessions"]);
  expect(names["stowage/ws"]).toEqual(
    expect.arrayContaining(["createConnectionServer", "ConnectionServer", "Connection", "isRetryable"]),
  );
  expect(names["stowage/tcp"]).toEqual(
    expect.arrayContaining([
      "createTcpConnectionServer",
      "TcpConnectionServer",
      "connectTcp",
      "generateChannelKey",
    ]),
  );
  expect(names["stowage/client"]).toEqual(["ClientConnection", "connect", "isRetryable"]);
  expect(names["stowage/express-session"]).toEqual(
    expect.arrayContaining(["Cookie", "MemoryStore", "Session", "Store", "StowageStore", "default"]),
  );
});
