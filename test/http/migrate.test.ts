import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { RedisStore as ConnectRedisStore } from "connect-redis";
import express from "express";
import session from "express-session";
import { createClient } from "redis";
import { afterAll, describe, expect, it } from "vitest";
import { sessionMiddleware, sessionOf } from "../../src/http/express.js";
import type { LegacyStore } from "../../src/http/migrate.js";
import { createSessions } from "../../src/index.js";
import { MemoryStore } from "../../src/stores/memory/index.js";
import { REDIS_URL } from "../helpers/services.js";
import { cookieOf, send } from "./client.js";

const SECRET = "keyboard cat";
const DAY = 86_400_000;
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => undefined);
});

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** The app before the move: express-session on `store`, signing in as passport does. */
async function oldApp(store: session.Store): Promise<string> {
  const app = express();
  app.use(
    session({ secret: SECRET, store, resave: false, saveUninitialized: false, cookie: { maxAge: 7 * DAY } }),
  );
  app.post("/login", (req, res) => {
    const data = req.session as unknown as Record<string, unknown>;
    data.passport = { user: "ada" };
    data.cart = ["book", "pen"];
    data.flash = { info: ["welcome"] };
    res.end("ok");
  });
  return listen(createServer(app));
}

/** The app after: stowage's express adapter, moving express-session's sessions over. */
async function newApp(store: LegacyStore) {
  const sessions = createSessions({ store: new MemoryStore() });
  const app = express();
  app.use(sessionMiddleware(sessions, { migrate: { store, secret: ["an older secret", SECRET] } }));
  app.get("/whoami", async (req, res) => {
    const s = await sessionOf(req);
    res.json({
      user: s.userId ?? null,
      cart: s.get("cart") ?? null,
      passport: s.get("passport") ?? null,
      flash: s.get("flash") ?? null,
    });
  });
  app.use((error: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    res.status((error as { status?: number }).status ?? 500).end(String((error as Error).message));
  });
  return { sessions, url: await listen(createServer(app)) };
}

const getOld = (store: session.Store, sid: string) =>
  new Promise<unknown>((resolve, reject) =>
    store.get(sid, (error, data) => (error ? reject(error) : resolve(data))),
  );

async function oldCookie(store: session.Store): Promise<{ cookie: string; sid: string }> {
  const url = await oldApp(store);
  const answer = await send(url, "POST", "/login");
  const raw = answer.setCookies.find((c) => c.startsWith("connect.sid="))!;
  const value = raw.slice("connect.sid=".length, raw.indexOf(";"));
  const sid = decodeURIComponent(value).slice(2, decodeURIComponent(value).lastIndexOf("."));
  return { cookie: `connect.sid=${value}`, sid };
}

const STORES = {
  "express-session's MemoryStore": async () => new session.MemoryStore(),
  "connect-redis (real Redis)": async () => {
    const client = createClient({ url: REDIS_URL });
    client.on("error", () => undefined);
    await client.connect();
    cleanups.push(() => client.quit());
    return new ConnectRedisStore({ client, prefix: `migrate-${Date.now()}:` });
  },
} as const;

describe.each(Object.keys(STORES) as (keyof typeof STORES)[])("moving sessions over from %s", (name) => {
  it("a valid connect.sid moves once: its data, its user and its cookie's lifetime; the old record goes", async () => {
    const store = await STORES[name]();
    const { cookie, sid } = await oldCookie(store);
    expect(await getOld(store, sid)).toMatchObject({ cart: ["book", "pen"] });
    const { url, sessions } = await newApp(store);
    const first = await send(url, "GET", "/whoami", { cookie });
    expect(first.body).toEqual({
      user: "ada",
      cart: ["book", "pen"],
      passport: { user: "ada" },
      flash: { info: ["welcome"] },
    });
    const sid2 = cookieOf(first.setCookies.find((c) => c.startsWith("sid="))!);
    // The old cookie was good for 7 days; so is the new one.
    expect(sid2.maxAge).toBeGreaterThan(7 * 86_400 - 120);
    expect(sid2.maxAge).toBeLessThanOrEqual(7 * 86_400);
    expect((await sessions.listForUser("ada")).map((s) => s.kind)).toEqual(["http"]);
    await expect.poll(() => getOld(store, sid)).toBeFalsy();
    // The new cookie carries the session from now on; the old one alone moves nothing a second time.
    const next = await send(url, "GET", "/whoami", { cookie: `sid=${sid2.value}; ${cookie}` });
    expect(next.body).toMatchObject({ user: "ada", cart: ["book", "pen"] });
    const again = await send(url, "GET", "/whoami", { cookie });
    expect(again.body).toEqual({ user: null, cart: null, passport: null, flash: null });
    expect(await sessions.listForUser("ada")).toHaveLength(1);
  });

  it("a tampered, unsigned or wrongly signed connect.sid moves nothing and leaves the old record", async () => {
    const store = await STORES[name]();
    const { cookie, sid } = await oldCookie(store);
    const { url, sessions } = await newApp(store);
    const value = decodeURIComponent(cookie.slice("connect.sid=".length));
    const signature = value.slice(value.lastIndexOf(".") + 1);
    const flipped = `${signature[0] === "A" ? "B" : "A"}${signature.slice(1)}`;
    const forged = [
      `s:${sid}.${flipped}`,
      sid,
      `s:${sid}`,
      `s:${sid}.`,
      `s:${sid}x.${signature}`,
      `s:${sid}.${signature}x`,
    ];
    for (const bad of forged) {
      const answer = await send(url, "GET", "/whoami", { cookie: `connect.sid=${encodeURIComponent(bad)}` });
      expect(answer.body).toEqual({ user: null, cart: null, passport: null, flash: null });
    }
    expect(await getOld(store, sid)).toMatchObject({ cart: ["book", "pen"] });
    expect(await sessions.listForUser("ada")).toEqual([]);
  });
});

describe("moving sessions over in the other adapters", () => {
  it("fastify, hono and node:http move a connect.sid as express does", async () => {
    const { default: Fastify } = await import("fastify");
    const { Hono } = await import("hono");
    const { getRequestListener } = await import("@hono/node-server");
    const { sessionPlugin, sessionOf: fastifySessionOf } = await import("../../src/http/fastify.js");
    const { sessionMiddleware: honoSessions } = await import("../../src/http/hono.js");
    const { withSessions } = await import("../../src/http/node.js");
    const store = new session.MemoryStore();
    const migrate = { store, secret: SECRET };
    const whoami = (s: { userId: string | undefined; get(key: string): unknown }) =>
      JSON.stringify({ user: s.userId ?? null, cart: s.get("cart") ?? null });
    const fastify = Fastify();
    await fastify.register(sessionPlugin(createSessions(), { migrate }));
    fastify.get("/whoami", async (request) => whoami(await fastifySessionOf(request)));
    await fastify.listen({ port: 0, host: "127.0.0.1" });
    cleanups.push(() => fastify.close());
    const hono = new Hono()
      .use(honoSessions(createSessions(), { migrate }))
      .get("/whoami", async (c) => c.text(whoami(await c.get("session"))));
    const node = withSessions(createSessions(), async (_req, res, lazy) => res.end(whoami(await lazy)), {
      migrate,
    });
    const urls = [
      `http://127.0.0.1:${(fastify.server.address() as AddressInfo).port}`,
      await listen(createServer(getRequestListener(hono.fetch))),
      await listen(createServer(node)),
    ];
    for (const url of urls) {
      const { cookie, sid } = await oldCookie(store);
      const answer = await send(url, "GET", "/whoami", { cookie });
      expect(answer.body).toEqual({ user: "ada", cart: ["book", "pen"] });
      expect(answer.setCookies.some((c) => c.startsWith("sid="))).toBe(true);
      await expect.poll(() => getOld(store, sid)).toBeFalsy();
    }
  });
});

describe("moving sessions over: failures", () => {
  it("an old store that fails answers 503 and keeps the old session for a later try", async () => {
    const store = new session.MemoryStore();
    const { cookie, sid } = await oldCookie(store);
    let failing = true;
    const flaky: LegacyStore = {
      get: (id, callback) => (failing ? callback(new Error("old store down")) : store.get(id, callback)),
      destroy: (id, callback) => store.destroy(id, callback),
    };
    const { url } = await newApp(flaky);
    const down = await send(url, "GET", "/whoami", { cookie });
    expect(down.status).toBe(503);
    expect(await getOld(store, sid)).toBeTruthy();
    failing = false;
    const up = await send(url, "GET", "/whoami", { cookie });
    expect(up.body).toMatchObject({ user: "ada" });
  });

  it("bad migrate options are refused with a clear message", () => {
    const sessions = createSessions();
    expect(() => sessionMiddleware(sessions, { migrate: { store: {} as LegacyStore, secret: "x" } })).toThrow(
      /migrate.store must be an express-session store/,
    );
    expect(() =>
      sessionMiddleware(sessions, {
        migrate: { store: new session.MemoryStore(), secret: "" },
      }),
    ).toThrow(/migrate.secret must be/);
  });
});
