import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, expect, it } from "vitest";
import { freePort } from "../helpers/redis-server.js";

const dir = mkdtempSync(join(tmpdir(), "stowage-setup-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const SERVICES = fileURLToPath(new URL("./services.ts", import.meta.url));

// The global setup, pointed at addresses where nothing answers, in a process of its own: it must start
// its own Redis and PostgreSQL there, point the tests at them, and leave nothing running afterwards.
// (The machine's own services are never stopped to prove it.)
it("where nothing answers on the given addresses, the setup starts its own servers and stops them after", async () => {
  const redisPort = await freePort();
  const postgresPort = await freePort({ avoid: [redisPort] });
  const script = join(dir, "run.mts");
  writeFileSync(
    script,
    `import { postgresAnswers, redisAnswers, setUpServices } from ${JSON.stringify(SERVICES)};
process.env.STOWAGE_TEST_REDIS_URL = "redis://127.0.0.1:${redisPort}";
process.env.STOWAGE_TEST_POSTGRES_URL = "postgres://postgres@127.0.0.1:${postgresPort}/test";
const said = [];
const teardown = await setUpServices({ browser: false, say: (line) => said.push(line) });
const urls = { redis: process.env.STOWAGE_TEST_REDIS_URL, postgres: process.env.STOWAGE_TEST_POSTGRES_URL };
const up = { redis: await redisAnswers(urls.redis), postgres: await postgresAnswers(urls.postgres) };
await teardown();
const down = { redis: await redisAnswers(urls.redis), postgres: await postgresAnswers(urls.postgres) };
console.log(JSON.stringify({ urls, up, down, said }));
`,
  );
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, ["--import", "tsx", script], { timeout: 120_000 }, (error, out, err) =>
      error ? reject(new Error(`${out}\n${err}`)) : resolve(out),
    );
  });
  const result = JSON.parse(stdout.trim().split("\n").pop()!) as {
    urls: { redis: string; postgres: string };
    up: { redis: boolean; postgres: boolean };
    down: { redis: boolean; postgres: boolean };
    said: string[];
  };
  expect(result.urls.redis).not.toBe(`redis://127.0.0.1:${redisPort}`);
  expect(result.urls.postgres).not.toContain(`:${postgresPort}/`);
  expect(result.urls.postgres).toMatch(/\/test$/);
  expect(result.up).toEqual({ redis: true, postgres: true });
  expect(result.down).toEqual({ redis: false, postgres: false });
  expect(result.said.join("\n")).toMatch(/started redis-server[\s\S]*started PostgreSQL/);
}, 180_000);
