import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { connect } from "node:net";
import pg from "pg";
import { freePort, startRedisServer, stopRedisServer } from "../helpers/redis-server.js";
import { TestPostgres } from "../stores/postgres-server.js";

// vitest's globalSetup: `npm test` sets up what it needs on a fresh machine. It uses the Redis and the
// PostgreSQL it is pointed at (STOWAGE_TEST_REDIS_URL, STOWAGE_TEST_POSTGRES_URL; the defaults are the
// machine's own services) when they answer, and otherwise starts test-owned ones on free loopback ports
// and points the tests at them; it stops what it started afterwards. It never stops a server it did not
// start. Chromium for the browser test is found or installed; a missing browser fails the run loudly.

export const DEFAULT_REDIS_URL = "redis://127.0.0.1:6379";
export const DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/test";
export const CHROMIUM = "/usr/bin/chromium";

/** True when a Redis answers PING at `url` within a second. */
export function redisAnswers(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port || 6379) });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once("error", () => done(false));
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.once("data", (data) => done(data.toString().startsWith("+PONG")));
  });
}

/** True when a PostgreSQL accepts `url` and answers a query within two seconds. */
export async function postgresAnswers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  client.on("error", () => undefined);
  try {
    await client.connect();
    await client.query("SELECT 1");
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Makes sure Chromium is there: found, or installed from Debian's packages when this is root. */
function ensureChromium(say: (line: string) => void): void {
  if (existsSync(CHROMIUM)) return;
  if (process.getuid?.() !== 0) {
    throw new Error(
      `the browser test needs ${CHROMIUM}: install Debian's chromium package (apt-get install chromium)`,
    );
  }
  say("installing chromium for the browser test (apt-get install chromium)");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  execFileSync("apt-get", ["update", "-qq"], { stdio: "ignore", env, timeout: 300_000 });
  execFileSync("apt-get", ["install", "-y", "-qq", "chromium"], { stdio: "ignore", env, timeout: 600_000 });
  if (!existsSync(CHROMIUM)) throw new Error(`apt-get install chromium did not provide ${CHROMIUM}`);
}

/** Sets up Redis, PostgreSQL (and, unless `browser` is false, Chromium); resolves the teardown. */
export async function setUpServices(
  options: { browser?: boolean; say?: (line: string) => void } = {},
): Promise<() => Promise<void>> {
  const say = options.say ?? ((line: string) => console.log(`test setup: ${line}`));
  const stops: (() => Promise<void>)[] = [];
  const teardown = async () => {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  };
  try {
    const redisUrl = process.env.STOWAGE_TEST_REDIS_URL ?? DEFAULT_REDIS_URL;
    if (!(await redisAnswers(redisUrl))) {
      const server = await startRedisServer(await freePort());
      stops.push(() => stopRedisServer(server));
      process.env.STOWAGE_TEST_REDIS_URL = `redis://127.0.0.1:${server.port}`;
      say(`nothing answers at ${redisUrl}; started redis-server on 127.0.0.1:${server.port}`);
    } else process.env.STOWAGE_TEST_REDIS_URL = redisUrl;

    const postgresUrl = process.env.STOWAGE_TEST_POSTGRES_URL ?? DEFAULT_POSTGRES_URL;
    if (!(await postgresAnswers(postgresUrl))) {
      const server = await TestPostgres.create();
      stops.push(() => server.destroy());
      const admin = new pg.Client({ connectionString: server.url });
      await admin.connect();
      await admin.query("CREATE DATABASE test");
      await admin.end();
      process.env.STOWAGE_TEST_POSTGRES_URL = server.url.replace(/\/postgres$/, "/test");
      say(`nothing answers at ${postgresUrl}; started PostgreSQL on 127.0.0.1:${server.port}`);
    } else process.env.STOWAGE_TEST_POSTGRES_URL = postgresUrl;

    if (options.browser !== false) ensureChromium(say);
  } catch (error) {
    await teardown();
    throw error;
  }
  return teardown;
}

/** vitest's globalSetup entry: runs before every test file, and its result after them all. */
export default function setup(): Promise<() => Promise<void>> {
  return setUpServices();
}
