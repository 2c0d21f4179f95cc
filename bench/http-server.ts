// One HTTP server of the HTTP bench, run in a child process so that the load generator (autocannon, in
// the parent) and the server each have a core. Started by bench/http.ts with the scenario name and a key
// prefix; it reports its port over IPC and cleans up its Redis keys when told to close.
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import fastifyCookie from "@fastify/cookie";
import fastifySession from "@fastify/session";
import { getRequestListener } from "@hono/node-server";
import { RedisStore as ConnectRedisStore } from "connect-redis";
import { parse as parseCookie, serialize as serializeCookie } from "cookie";
import express, { type Request, type Response } from "express";
import session from "express-session";
import Fastify, { type FastifyRequest } from "fastify";
import { Hono } from "hono";
import { MemoryStore as HonoMemoryStore, sessionMiddleware as honoSessionsMiddleware } from "hono-sessions";
import { Redis } from "ioredis";
import { createClient } from "redis";
import type { Session } from "stowage";
import { type Attributes, createSessions, MemoryStore, type Sessions } from "stowage";
import { sessionMiddleware, sessionOf } from "stowage/express";
import dropIn from "stowage/express-session";
import { sessionOf as fastifySessionOf, sessionPlugin } from "stowage/fastify";
import { sessionMiddleware as stowageHono } from "stowage/hono";
import { withSessions } from "stowage/http";
import { RedisStore } from "stowage/redis";
import { dropPrefix } from "./common.js";
import { oneKbAttributes, smallSession } from "./fixtures.js";

/** Every server the bench can start. */
const SCENARIOS = [
  "node-map",
  "node-stowage",
  "express-session",
  "express-stowage",
  "express-session-redis",
  "express-stowage-redis",
  "express-dropin",
  "express-dropin-redis",
  "fastify-session",
  "fastify-stowage",
  "hono-sessions",
  "hono-stowage",
  "express-bare",
] as const;
type Scenario = (typeof SCENARIOS)[number];

const REDIS_URL = process.env.STOWAGE_BENCH_REDIS ?? "redis://127.0.0.1:6379";
const SECRET = "bench secret, not a real one";

interface Started {
  server: Server;
  cleanup: () => Promise<void>;
}

function keyOf(url: string | undefined): string {
  return `k${new URL(url ?? "/", "http://x").searchParams.get("k") ?? ""}`;
}

/** What a login puts in the session: ~1 KB through /login, three short attributes through /login-small. */
function loginAttributes(path: string): Attributes {
  return path === "/login-small" ? smallSession() : oneKbAttributes();
}

function countKeys(keys: string[]): number {
  return keys.filter((k) => /^k\d+$/.test(k)).length;
}

/**
 * The request's work on a stowage session; the same for node:http and express. "/" (the measured route:
 * increment a counter) comes first and stays synchronous, as the no-session handler is; only /update,
 * which writes through the store at once, answers with a promise.
 */
function stowageRoute(url: string | undefined, s: Session): string | Promise<string> {
  if (url === "/") return increment(s);
  const path = (url ?? "/").split("?")[0];
  switch (path) {
    case "/login":
    case "/login-small":
      for (const [k, v] of Object.entries(loginAttributes(path))) s.set(k, v);
      return "ok";
    case "/update":
      return s.update("counter", (n) => ((n as number | undefined) ?? 0) + 1).then(String);
    case "/key":
      s.set(keyOf(url), true);
      return "ok";
    case "/read":
      return JSON.stringify({ counter: s.get("counter") ?? 0, keys: countKeys(s.keys()) });
    default:
      return increment(s);
  }
}

function increment(s: Session): string {
  const n = ((s.get("counter") as number | undefined) ?? 0) + 1;
  s.set("counter", n);
  return String(n);
}

/** The same work on an express-session session. */
function expressSessionRoute(url: string | undefined, s: Attributes): string {
  const path = (url ?? "/").split("?")[0];
  switch (path) {
    case "/login":
    case "/login-small":
      Object.assign(s, loginAttributes(path));
      return "ok";
    case "/key":
      s[keyOf(url)] = true;
      return "ok";
    case "/read":
      return JSON.stringify({ counter: s.counter ?? 0, keys: countKeys(Object.keys(s)) });
    default: {
      // "/" and "/update": express-session has no atomic update, so both are a plain read-modify-write.
      const n = ((s.counter as number | undefined) ?? 0) + 1;
      s.counter = n;
      return String(n);
    }
  }
}

function expressStowage(sessions: Sessions): express.Express {
  const app = express();
  app.use(sessionMiddleware(sessions));
  app.get(/.*/, async (req: Request, res: Response) => {
    res.send(await stowageRoute(req.url, await sessionOf(req)));
  });
  return app;
}

function expressWithSession(
  store: session.Store,
  factory = session as unknown as typeof dropIn,
): express.Express {
  const app = express();
  app.use(factory({ secret: SECRET, resave: false, saveUninitialized: false, store: store as never }));
  app.get(/.*/, (req: Request, res: Response) => {
    res.send(expressSessionRoute(req.url, req.session as unknown as Attributes));
  });
  return app;
}

/** A fastify app on a node:http server of the bench's own (fastify's routing is its request listener). */
async function fastifyServer(
  setup: (app: ReturnType<typeof Fastify>) => Promise<void> | void,
): Promise<Server> {
  let server: Server | undefined;
  const app = Fastify({
    serverFactory: (handler) => {
      server = createServer(handler);
      return server;
    },
  });
  await setup(app);
  await app.ready();
  return server!;
}

/** The same work on a @fastify/session or hono-sessions session, which have get and set. */
function getSetRoute(
  url: string | undefined,
  s: { get(key: string): unknown; set(key: string, value: unknown): void },
) {
  const path = (url ?? "/").split("?")[0];
  if (path === "/login" || path === "/login-small") {
    for (const [k, v] of Object.entries(loginAttributes(path))) s.set(k, v);
    return "ok";
  }
  const n = ((s.get("counter") as number | undefined) ?? 0) + 1;
  s.set("counter", n);
  return String(n);
}

/**
 * stowage's MemoryStore, with its sweep interval from STOWAGE_BENCH_SWEEP_MS when set: under callgrind
 * (bench/instructions.ts) a request takes ~25 times as long, so a timer on wall time would do ~25 times
 * its share of work per request (packing idle records) unless its interval stretches as much.
 */
function memoryStore(): MemoryStore {
  const sweep = process.env.STOWAGE_BENCH_SWEEP_MS;
  return new MemoryStore(sweep === undefined ? {} : { sweepIntervalMs: Number(sweep) });
}

async function dropRedisPrefix(prefix: string): Promise<void> {
  const client = new Redis(REDIS_URL);
  await dropPrefix(client, prefix);
  client.disconnect();
}

/**
 * The limit of an in-memory session: a counter per cookie in a Map, no token, no store, no expiry. A
 * login sets a random cookie and keeps nothing else; the answer is the body to send.
 */
function countPerCookie(): (req: IncomingMessage, res: ServerResponse) => string {
  const counters = new Map<string, number>();
  return (req, res) => {
    if (req.url?.startsWith("/login")) {
      const id = randomBytes(16).toString("base64url");
      counters.set(id, 0);
      res.setHeader("set-cookie", serializeCookie("sid", id, { httpOnly: true, path: "/" }));
      return "ok";
    }
    const id = parseCookie(req.headers.cookie ?? "").sid;
    const n = (id === undefined ? 0 : (counters.get(id) ?? 0)) + 1;
    if (id !== undefined) counters.set(id, n);
    return String(n);
  };
}

async function start(scenario: Scenario, prefix: string): Promise<Started> {
  const nothing = async (): Promise<void> => {};
  switch (scenario) {
    case "node-map": {
      const count = countPerCookie();
      return { server: createServer((req, res) => res.end(count(req, res))), cleanup: nothing };
    }
    case "express-bare": {
      const count = countPerCookie();
      const app = express();
      app.get(/.*/, (req: Request, res: Response) => {
        res.send(count(req, res));
      });
      return { server: createServer(app), cleanup: nothing };
    }
    case "node-stowage": {
      const sessions = createSessions({ store: memoryStore() });
      const handler = withSessions(sessions, async (req, res, lazy) => {
        const body = stowageRoute(req.url, await lazy);
        res.end(typeof body === "string" ? body : await body);
      });
      return { server: createServer(handler), cleanup: () => sessions.close() };
    }
    case "express-session":
      return { server: createServer(expressWithSession(new session.MemoryStore())), cleanup: nothing };
    case "express-stowage": {
      const sessions = createSessions({ store: memoryStore() });
      return { server: createServer(expressStowage(sessions)), cleanup: () => sessions.close() };
    }
    case "express-session-redis": {
      const client = createClient({ url: REDIS_URL });
      client.on("error", () => undefined);
      await client.connect();
      const store = new ConnectRedisStore({ client, prefix });
      return {
        server: createServer(expressWithSession(store)),
        cleanup: async () => {
          await dropRedisPrefix(prefix);
          await client.quit();
        },
      };
    }
    case "fastify-session": {
      const server = await fastifyServer(async (app) => {
        await app.register(fastifyCookie);
        await app.register(fastifySession, {
          secret: `${SECRET} padded to the 32 characters @fastify/session wants`,
          cookie: { secure: false },
          saveUninitialized: false,
        });
        app.get("/*", (request: FastifyRequest) => getSetRoute(request.url, request.session as never));
      });
      return { server, cleanup: nothing };
    }
    case "fastify-stowage": {
      const sessions = createSessions({ store: memoryStore() });
      const server = await fastifyServer(async (app) => {
        await app.register(sessionPlugin(sessions));
        app.get("/*", async (request: FastifyRequest) =>
          stowageRoute(request.url, await fastifySessionOf(request)),
        );
      });
      return { server, cleanup: () => sessions.close() };
    }
    case "hono-sessions": {
      const app = new Hono<{
        Variables: { session: { get(k: string): unknown; set(k: string, v: unknown): void } };
      }>();
      app.use(
        "*",
        honoSessionsMiddleware({ store: new HonoMemoryStore(), expireAfterSeconds: 14 * 86_400 }) as never,
      );
      app.get("*", (c) => c.text(getSetRoute(c.req.path, c.get("session"))));
      return { server: createServer(getRequestListener(app.fetch)), cleanup: nothing };
    }
    case "hono-stowage": {
      const sessions = createSessions({ store: memoryStore() });
      const app = new Hono()
        .use(stowageHono(sessions))
        .get("*", async (c) => c.text(await stowageRoute(c.req.path, await c.get("session"))));
      return { server: createServer(getRequestListener(app.fetch)), cleanup: () => sessions.close() };
    }
    case "express-dropin": {
      const store = memoryStore();
      return {
        server: createServer(expressWithSession(store as never, dropIn)),
        cleanup: () => store.close(),
      };
    }
    case "express-dropin-redis": {
      const store = new RedisStore({ url: REDIS_URL, prefix });
      return {
        server: createServer(expressWithSession(store as never, dropIn)),
        cleanup: async () => {
          await dropRedisPrefix(prefix);
          await store.close();
        },
      };
    }
    case "express-stowage-redis": {
      const sessions = createSessions({ store: new RedisStore({ url: REDIS_URL, prefix }) });
      return {
        server: createServer(expressStowage(sessions)),
        cleanup: async () => {
          await dropRedisPrefix(prefix);
          await sessions.close();
        },
      };
    }
  }
}

const scenario = process.argv[2] as Scenario;
const prefix = process.argv[3] ?? "stowage-bench-http:";
if (!SCENARIOS.includes(scenario) || !process.send) {
  console.error(`usage: forked by bench/http.ts with one of ${SCENARIOS.join(", ")}`);
  process.exit(2);
}
const { server, cleanup } = await start(scenario, prefix);
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  process.send?.({ port: typeof address === "object" && address ? address.port : 0 });
});
// Server CPU per request since the last "mark": the figure that does not depend on how busy the load
// generator is. process.cpuUsage counts every thread of the process (GC helpers included).
let cpuMark = process.cpuUsage();
let served = 0;
server.on("request", () => {
  served++;
});
process.on("message", (message) => {
  if (message === "mark") {
    cpuMark = process.cpuUsage();
    served = 0;
    return;
  }
  if (message === "cpu") {
    const used = process.cpuUsage(cpuMark);
    process.send?.({ cpuMicrosPerRequest: (used.user + used.system) / Math.max(1, served) });
    return;
  }
  if (message !== "close") return;
  server.closeAllConnections();
  server.close();
  cleanup()
    .catch(() => undefined)
    .finally(() => process.exit(0));
});
