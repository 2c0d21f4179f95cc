import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { Agent, createServer, type RequestListener, request, type Server, ServerResponse } from "node:http";
import { createServer as createTlsServer, request as httpsRequest } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getRequestListener } from "@hono/node-server";
import express from "express";
import express4 from "express4";
import Fastify from "fastify";
import { Hono } from "hono";
import { afterAll, describe, expect, it } from "vitest";
import { isStowageError, StowageError } from "../../src/core/errors.js";
import { issueToken } from "../../src/core/tokens.js";
import { sessionMiddleware as expressSessions, sessionOf } from "../../src/http/express.js";
import { sessionPlugin } from "../../src/http/fastify.js";
import { sessionMiddleware as honoSessions, type SessionVariables } from "../../src/http/hono.js";
import { attachSession, Carriage, handleFetch, withSessions } from "../../src/http/index.js";
import { createSessions, MemoryStore, type Sessions } from "../../src/index.js";
import { type Answer, cookieOf, send } from "./client.js";
import { endWrapper, freshExpress } from "./express-copies.js";

const servers: Server[] = [];
afterAll(async () => {
  for (const server of servers) {
    server.closeAllConnections();
    await new Promise((done) => server.close(done));
  }
});

async function serve(listener: RequestListener, server: Server = createServer(listener)): Promise<string> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe("node:http specifics", () => {
  it("a handler that sends headers early still gets the cookie of the session as it stood", async () => {
    const sessions = createSessions();
    const host = await serve(
      withSessions(sessions, async (_req, res, lazy) => {
        const session = await lazy;
        session.set("streamed", true);
        res.writeHead(200, { "content-type": "text/plain" });
        res.write("part one, ");
        await new Promise((resolve) => setTimeout(resolve, 10));
        res.end("part two");
      }),
    );
    const answer = await send(`http://${host}`, "GET", "/");
    expect(answer.text).toBe("part one, part two");
    expect(answer.setCookies).toHaveLength(1);
    const loaded = await sessions.load(cookieOf(answer.setCookies[0]!).value);
    expect(loaded?.get("streamed")).toBe(true);
  });

  it("attachSession on a response that already has a session attached throws CONFIG_INVALID; the first one still commits", async () => {
    const sessions = createSessions();
    const carriage = new Carriage();
    let thrown: unknown;
    const host = await serve(async (req, res) => {
      const first = attachSession(sessions, carriage, req, res);
      try {
        attachSession(sessions, carriage, req, res);
      } catch (error) {
        thrown = error;
      }
      (await first.lazy).set("first", true);
      res.end("ok");
    });
    const answer = await send(`http://${host}`, "GET", "/");
    expect(isStowageError(thrown, "CONFIG_INVALID")).toBe(true);
    expect((await sessions.load(cookieOf(answer.setCookies[0]!).value))?.get("first")).toBe(true);
  });

  it("a keep-alive connection that switches tokens gets each one checked: a forged one loads nothing", async () => {
    const sessions = createSessions();
    const ports = new Set<number>();
    const host = await serve(
      withSessions(sessions, async (req, res, lazy) => {
        ports.add(req.socket.remotePort ?? 0);
        const session = await lazy;
        const n = ((session.get("n") as number | undefined) ?? 0) + 1;
        session.set("n", n);
        res.end(String(n));
      }),
    );
    const good = sessions.create();
    good.set("n", 0);
    await good.save();
    const forged = `${good.id}.${sessions.create().token.slice(23)}`;
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const get = (token: string) =>
      new Promise<{ body: string; cookies: string[] }>((resolve, reject) => {
        const req = request(`http://${host}/`, { agent, headers: { cookie: `sid=${token}` } }, (res) => {
          let body = "";
          res.on("data", (chunk: Buffer) => {
            body += chunk.toString();
          });
          res.on("end", () => resolve({ body, cookies: res.headers["set-cookie"] ?? [] }));
        });
        req.on("error", reject);
        req.end();
      });
    const answers = [];
    for (const token of [good.token, good.token, forged, good.token]) answers.push(await get(token));
    agent.destroy();
    expect(ports.size).toBe(1);
    expect(answers.map((a) => a.body)).toEqual(["1", "2", "1", "3"]);
    // The forged token got a new session of its own, under a new cookie; the good one kept its cookie.
    expect(answers[2]!.cookies).toHaveLength(1);
    expect(cookieOf(answers[2]!.cookies[0]!).value).not.toContain(good.id);
    expect(answers[3]!.cookies).toEqual([]);
    expect(sessions.stats().forged).toBe(1);
  });

  it("a streamed response skips a due rotation, whose token could no longer reach the client", async () => {
    let offset = -61_000;
    const sessions = createSessions({ rotateEvery: 60_000, clock: { now: () => Date.now() + offset } });
    const session = sessions.create();
    session.set("a", 1);
    await sessions.commit(session);
    offset = 0;
    const host = await serve(
      withSessions(sessions, async (_req, res, lazy) => {
        const s = await lazy;
        res.write(String(s.get("a")));
        res.end();
      }),
    );
    const streamed = await send(`http://${host}`, "GET", "/", { cookie: `sid=${session.token}` });
    expect(streamed.text).toBe("1");
    expect(streamed.setCookies).toEqual([]);
    offset = 30_000;
    expect((await sessions.load(session.token))?.get("a")).toBe(1);
  });

  it("a handler error is a 500 reported to onError, the session is not committed, and the server stays up", async () => {
    const errors: unknown[] = [];
    const sessions = createSessions();
    let inserts = 0;
    sessions.on("created", () => inserts++);
    const host = await serve(
      withSessions(
        sessions,
        async (req, _res, lazy) => {
          (await lazy).set("half", "done");
          if (req.url === "/sync") throw new Error("sync boom");
          await Promise.reject(new Error("async boom"));
        },
        { onError: (error) => errors.push(error) },
      ),
    );
    for (const path of ["/sync", "/async"]) {
      const answer = await send(`http://${host}`, "GET", path);
      expect(answer.status).toBe(500);
      expect(answer.text).toBe("Internal Server Error\n");
      expect(answer.setCookies).toEqual([]);
    }
    expect(errors.map((e) => (e as Error).message)).toEqual(["sync boom", "async boom"]);
    expect(inserts).toBe(0);
  });

  it("a session ended elsewhere while the request ran: the response goes out and the cookie is cleared", async () => {
    const sessions = createSessions();
    const session = sessions.create();
    session.set("a", 1);
    await sessions.commit(session);
    const host = await serve(
      withSessions(sessions, async (_req, res, lazy) => {
        const s = await lazy;
        await sessions.end(s.id);
        s.set("b", 2);
        res.end("done");
      }),
    );
    const answer = await send(`http://${host}`, "GET", "/", { cookie: `sid=${session.token}` });
    expect(answer.status).toBe(200);
    expect(answer.text).toBe("done");
    expect(answer.setCookies.map((c) => cookieOf(c).maxAge)).toEqual([0]);
  });
});

describe("fetch specifics", () => {
  it("adds the cookie to a response with immutable headers (a redirect) by copying it", async () => {
    const sessions = createSessions();
    const handle = handleFetch(sessions, async (_request, lazy) => {
      (await lazy).set("a", 1);
      return Response.redirect("http://127.0.0.1/next", 303);
    });
    const response = await handle(new Request("http://127.0.0.1/"));
    expect(response.status).toBe(303);
    expect(response.headers.get("location")).toBe("http://127.0.0.1/next");
    expect(response.headers.getSetCookie()).toHaveLength(1);
  });

  it("rethrows handler errors other than a store outage, and turns an outage into a 503", async () => {
    const sessions = createSessions();
    await expect(
      handleFetch(sessions, () => Promise.reject(new Error("boom")))(new Request("http://x/")),
    ).rejects.toThrow("boom");
    const down = handleFetch(sessions, () => {
      throw new StowageError("STORE_UNAVAILABLE", "down");
    });
    const response = await down(new Request("http://x/"));
    expect(response.status).toBe(503);
    expect(response.headers.get("content-type")).toContain("text/plain");
  });
});

const EXPRESSES = [
  ["express 5", express],
  ["express 4", express4],
] as const;

describe.each(EXPRESSES)("%s error handling", (_name, makeApp) => {
  // On express 4 a rejected async handler is an unhandled rejection, which would fail this test run.
  it("a store outage met by `await sessionOf(req)` in a plain async handler is a 503; the process stays up", async () => {
    const store = new MemoryStore();
    await store.close();
    const app = makeApp();
    app.use(expressSessions(createSessions({ store })));
    app.get("/", async (req, res) => {
      const session = await sessionOf(req);
      res.json(session.keys());
    });
    const host = await serve(app);
    const previous = process.env.NODE_ENV;
    process.env.NODE_ENV = "test";
    try {
      const answer = await send(`http://${host}`, "GET", "/", { cookie: `sid=${issueToken().token}` });
      expect(answer.status).toBe(503);
    } finally {
      process.env.NODE_ENV = previous;
    }
  });

  it("a store outage met by update() inside an express route answers 503, not 500", async () => {
    const store = new MemoryStore();
    const sessions = createSessions<{ n: number }>({ store });
    const seeded = sessions.create({ attributes: { n: 1 } });
    await seeded.save();
    const app = makeApp();
    app.use(expressSessions(sessions));
    // express 4 passes nothing a handler's own awaits reject with to `next`: the handler does, as usual there.
    app.post("/", (req, res, next) => {
      (async () => {
        const session = await sessionOf<{ n: number }>(req);
        await store.close();
        await session.update("n", (n) => (n ?? 0) + 1);
        res.json({ ok: true });
      })().catch(next);
    });
    const host = await serve(app);
    const previous = process.env.NODE_ENV;
    process.env.NODE_ENV = "test";
    try {
      const answer = await send(`http://${host}`, "POST", "/", { cookie: `sid=${seeded.token}` });
      expect(answer.status).toBe(503);
    } finally {
      process.env.NODE_ENV = previous;
    }
  });

  it("follows express's trust proxy: X-Forwarded-Proto https behind a trusted proxy gets __Host-sid; Secure", async () => {
    const sessions = createSessions();
    const app = makeApp();
    app.set("trust proxy", 1);
    app.use(expressSessions(sessions));
    app.get("/", async (req, res) => {
      const session = await sessionOf(req);
      session.set("n", 1);
      res.json({ secure: req.secure });
    });
    const host = await serve(app);
    const behind = await send(`http://${host}`, "GET", "/", { "x-forwarded-proto": "https" });
    expect(behind.body).toEqual({ secure: true });
    expect(cookieOf(behind.setCookies[0]!)).toMatchObject({ name: "__Host-sid", secure: true });
    const plain = await send(`http://${host}`, "GET", "/");
    expect(cookieOf(plain.setCookies[0]!)).toMatchObject({ name: "sid" });
    expect(cookieOf(plain.setCookies[0]!).secure).toBeFalsy();

    const untrusting = makeApp();
    untrusting.use(expressSessions(sessions));
    untrusting.get("/", async (req, res) => {
      (await sessionOf(req)).set("n", 1);
      res.end();
    });
    const spoofed = await send(`http://${await serve(untrusting)}`, "GET", "/", {
      "x-forwarded-proto": "https",
    });
    expect(cookieOf(spoofed.setCookies[0]!)).toMatchObject({ name: "sid" });
  });

  it("sessionOf without the middleware says so", () => {
    expect(() => sessionOf({} as express.Request)).toThrow(/sessionMiddleware/);
  });
});

describe.each(EXPRESSES)("%s response hooks", (_name, makeApp) => {
  /** The session a response's cookie names, as the store has it now. */
  async function stored<A extends object>(sessions: Sessions<A>, answer: Answer) {
    expect(answer.setCookies).toHaveLength(1);
    return sessions.load(cookieOf(answer.setCookies[0]!).value);
  }

  it("mounted twice on one request's way (app and router): one session, every change committed, one cookie", async () => {
    const sessions = createSessions();
    const app = makeApp();
    const router = express.Router();
    const seen: unknown[] = [];
    app.use(expressSessions(sessions));
    app.use((req, _res, next) => {
      seen.push(sessionOf(req));
      sessionOf(req).then((s) => {
        s.set("app", 1);
        next();
      }, next);
    });
    router.use(expressSessions(sessions));
    router.get("/", async (req, res) => {
      seen.push(sessionOf(req));
      (await sessionOf(req)).set("router", 2);
      res.send("ok");
    });
    app.use(router);
    const answer = await send(`http://${await serve(app)}`, "GET", "/");
    expect(answer.status).toBe(200);
    expect(seen[0]).toBe(seen[1]);
    const loaded = await stored(sessions, answer);
    expect([loaded?.get("app"), loaded?.get("router")]).toEqual([1, 2]);
  });

  it("a second manager's middleware on a request that has a session is a CONFIG_INVALID error", async () => {
    const app = makeApp();
    app.use(expressSessions(createSessions()));
    app.use(expressSessions(createSessions()));
    app.get("/", (_req, res) => {
      res.send("unreachable");
    });
    const errors: unknown[] = [];
    app.use((error: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      errors.push(error);
      res.status(500).send("config");
    });
    const answer = await send(`http://${await serve(app)}`, "GET", "/");
    expect(answer.status).toBe(500);
    expect(errors).toHaveLength(1);
    expect(isStowageError(errors[0], "CONFIG_INVALID")).toBe(true);
    expect((errors[0] as Error).message).toMatch(/another Sessions manager/);
  });

  it("req.session is read-only: assigning it throws a TypeError and the session is still committed", async () => {
    const sessions = createSessions();
    const app = makeApp();
    app.use(expressSessions(sessions));
    let thrown: unknown;
    app.get("/", async (req, res) => {
      (await sessionOf(req)).set("kept", true);
      try {
        (req as unknown as { session: unknown }).session = { replaced: true };
      } catch (error) {
        thrown = error;
      }
      res.send("ok");
    });
    const answer = await send(`http://${await serve(app)}`, "GET", "/");
    expect(thrown).toBeInstanceOf(TypeError);
    expect((await stored(sessions, answer))?.get("kept")).toBe(true);
  });

  it("res.end wrapped before and after the middleware (a logger, compression): every wrapper runs and the session is committed first", async () => {
    const sessions = createSessions();
    const app = makeApp();
    const calls: string[] = [];
    const wrapEnd = endWrapper(calls);
    app.use(wrapEnd("before"));
    app.use(expressSessions(sessions));
    app.use(wrapEnd("after"));
    app.get("/", async (req, res) => {
      (await sessionOf(req)).set("wrapped", true);
      res.send("ok");
    });
    const host = await serve(app);
    const answer = await send(`http://${host}`, "GET", "/");
    // The wrapper installed after stowage runs first (it is outermost); the one before sees the cookie.
    expect(calls).toEqual(["after:no cookie", "before:cookie"]);
    expect((await stored(sessions, answer))?.get("wrapped")).toBe(true);
  });

  it("res.end wrapped only after the middleware: the wrapper runs first, then the commit; the cookie goes out", async () => {
    const sessions = createSessions();
    const app = makeApp();
    const calls: string[] = [];
    app.use(expressSessions(sessions));
    app.use((_req, res, next) => {
      const end = res.end;
      res.end = function (this: express.Response, ...args: unknown[]) {
        calls.push(res.getHeader("set-cookie") === undefined ? "wrapper, no cookie yet" : "wrapper, cookie");
        return (end as (...a: unknown[]) => express.Response).apply(this, args);
      } as express.Response["end"];
      next();
    });
    app.get("/", async (req, res) => {
      (await sessionOf(req)).set("wrapped", true);
      res.send("ok");
    });
    const answer = await send(`http://${await serve(app)}`, "GET", "/");
    expect(calls).toEqual(["wrapper, no cookie yet"]);
    expect((await stored(sessions, answer))?.get("wrapped")).toBe(true);
  });

  it("a sub-app mounted below the middleware, and the middleware inside a mounted sub-app, commit", async () => {
    const sessions = createSessions();
    const app = makeApp();
    const sub = makeApp();
    app.use(expressSessions(sessions));
    sub.get("/deep", async (req, res) => {
      (await sessionOf(req)).set("deep", true);
      res.json({ ok: true });
    });
    app.use("/sub", sub);
    const answer = await send(`http://${await serve(app)}`, "GET", "/sub/deep");
    expect(answer.body).toEqual({ ok: true });
    expect((await stored(sessions, answer))?.get("deep")).toBe(true);

    const outer = makeApp();
    const api = makeApp();
    api.use(expressSessions(sessions));
    api.get("/in", async (req, res) => {
      (await sessionOf(req)).set("api", true);
      res.send("ok");
    });
    outer.use("/api", api);
    const inside = await send(`http://${await serve(outer)}`, "GET", "/api/in");
    expect((await stored(sessions, inside))?.get("api")).toBe(true);
  });

  it("leaves node's ServerResponse and an app without stowage as they were", async () => {
    const end = ServerResponse.prototype.end;
    const writeHead = ServerResponse.prototype.writeHead;
    const withStowage = makeApp();
    withStowage.use(expressSessions(createSessions()));
    withStowage.get("/", async (req, res) => {
      (await sessionOf(req)).set("n", 1);
      res.send("ok");
    });
    expect((await send(`http://${await serve(withStowage)}`, "GET", "/")).setCookies).toHaveLength(1);
    const without = makeApp();
    without.get("/", (_req, res) => {
      res.setHeader("x-plain", "yes");
      res.status(201).send("plain");
    });
    const plain = await fetch(`http://${await serve(without)}/`);
    expect([plain.status, plain.headers.get("x-plain"), await plain.text()]).toEqual([201, "yes", "plain"]);
    expect(plain.headers.getSetCookie()).toEqual([]);
    expect(ServerResponse.prototype.end).toBe(end);
    expect(ServerResponse.prototype.writeHead).toBe(writeHead);
  });

  it("a patch of node's ServerResponse.prototype.end made after stowage hooked express (an APM agent) still runs", async () => {
    const sessions = createSessions();
    const app = makeApp();
    app.use(expressSessions(sessions));
    app.get("/", async (req, res) => {
      (await sessionOf(req)).set("n", 1);
      res.send("ok");
    });
    const host = await serve(app);
    await send(`http://${host}`, "GET", "/");
    const original = ServerResponse.prototype.end;
    let patched = 0;
    ServerResponse.prototype.end = function (this: ServerResponse, ...args: unknown[]) {
      patched++;
      return (original as (...a: unknown[]) => ServerResponse).apply(this, args);
    } as ServerResponse["end"];
    try {
      const answer = await send(`http://${host}`, "GET", "/");
      expect(patched).toBe(1);
      expect((await stored(sessions, answer))?.get("n")).toBe(1);
    } finally {
      ServerResponse.prototype.end = original;
    }
  });
});

describe("express apps of two copies of express", () => {
  it.each([
    ["express 4 inside express 5", "express", "express4"],
    ["express 5 inside express 4", "express4", "express"],
  ] as const)("%s: a session loaded in the inner app is committed", async (_name, outerName, innerName) => {
    const sessions = createSessions();
    const outer = freshExpress(outerName)();
    const inner = freshExpress(innerName)();
    outer.use(expressSessions(sessions));
    inner.get("/in", async (req, res) => {
      (await sessionOf(req)).set("inner", true);
      res.send("ok");
    });
    // Called as a handler, not mounted: express gives the inner app's responses its own copy's prototype.
    outer.use("/inner", (req, res, next) => inner(req, res, next));
    const host = await serve(outer);
    const answer = await send(`http://${host}`, "GET", "/inner/in");
    expect(answer.setCookies).toHaveLength(1);
    expect((await sessions.load(cookieOf(answer.setCookies[0]!).value))?.get("inner")).toBe(true);
  });

  it("a session loaded in the outer app and changed in the inner one is committed when the inner app mounts the middleware too", async () => {
    const sessions = createSessions();
    const outer = freshExpress("express4")();
    const inner = freshExpress("express")();
    outer.use(expressSessions(sessions));
    outer.use((req, _res, next) => {
      sessionOf(req).then((s) => {
        s.set("outer", true);
        next();
      }, next);
    });
    inner.use(expressSessions(sessions));
    inner.get("/in", (req, res) => {
      const session = sessionOf(req).peek();
      session?.set("inner", true);
      res.send("ok");
    });
    outer.use("/inner", (req, res, next) => inner(req, res, next));
    const answer = await send(`http://${await serve(outer)}`, "GET", "/inner/in");
    const loaded = await sessions.load(cookieOf(answer.setCookies[0]!).value);
    expect([loaded?.get("outer"), loaded?.get("inner")]).toEqual([true, true]);
  });
});

describe("fastify and proxies", () => {
  it("follows fastify's trustProxy: X-Forwarded-Proto https from a trusted proxy gets __Host-sid; Secure", async () => {
    const sessions = createSessions();
    for (const trustProxy of [true, false]) {
      const app = Fastify({ trustProxy });
      await app.register(sessionPlugin(sessions));
      app.get("/", async (request) => {
        (await request.session).set("n", 1);
        return { protocol: request.protocol };
      });
      await app.listen({ host: "127.0.0.1", port: 0 });
      const { port } = app.server.address() as AddressInfo;
      const answer = await send(`http://127.0.0.1:${port}`, "GET", "/", { "x-forwarded-proto": "https" });
      await app.close();
      const cookie = cookieOf(answer.setCookies[0]!);
      if (trustProxy) expect(cookie).toMatchObject({ name: "__Host-sid", secure: true });
      else expect(cookie).toMatchObject({ name: "sid" });
    }
  });
});

function openssl(): boolean {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(!openssl())("over real TLS (self-signed certificate made at test time)", () => {
  const dir = mkdtempSync(join(tmpdir(), "stowage-tls-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const tls = () => {
    const key = join(dir, "key.pem");
    const cert = join(dir, "cert.pem");
    execFileSync(
      "openssl",
      ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"].concat([
        "-keyout",
        key,
        "-out",
        cert,
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
      ]),
      { stdio: "ignore" },
    );
    return { key: readFileSync(key), cert: readFileSync(cert) };
  };

  function get(host: string, path: string, cookie?: string): Promise<{ setCookies: string[]; body: string }> {
    const [hostname, port] = host.split(":");
    return new Promise((resolve, reject) => {
      const req = httpsRequest(
        // The certificate is our own, made a moment ago, on loopback.
        { hostname, port, path, method: "GET", rejectUnauthorized: false, headers: cookie ? { cookie } : {} },
        (res) => {
          let body = "";
          res.setEncoding("utf8").on("data", (chunk: string) => {
            body += chunk;
          });
          res.on("end", () => resolve({ setCookies: res.headers["set-cookie"] ?? [], body }));
        },
      );
      req.on("error", reject).end();
    });
  }

  it("node:http and hono (through @hono/node-server) set __Host-sid; Secure on a TLS socket", async () => {
    const options = tls();
    const sessions = createSessions();
    const nodeHost = await serve(
      () => {},
      createTlsServer(
        options,
        withSessions(sessions, async (_req, res, lazy) => {
          const s = await lazy;
          s.set("n", ((s.get("n") as number | undefined) ?? 0) + 1);
          res.end(String(s.get("n")));
        }),
      ),
    );
    const app = new Hono<{ Variables: SessionVariables }>();
    app.use(honoSessions(sessions));
    app.get("/", async (c) => {
      const s = await c.get("session");
      s.set("n", ((s.get("n") as number | undefined) ?? 0) + 1);
      return c.text(String(s.get("n")));
    });
    const honoHost = await serve(() => {}, createTlsServer(options, getRequestListener(app.fetch)));
    for (const host of [nodeHost, honoHost]) {
      const first = await get(host, "/");
      expect(first.body).toBe("1");
      const cookie = cookieOf(first.setCookies[0]!);
      expect(cookie).toMatchObject({ name: "__Host-sid", secure: true, path: "/", httpOnly: true });
      expect(cookie.domain).toBeUndefined();
      const second = await get(host, "/", `__Host-sid=${cookie.value}`);
      expect(second.body).toBe("2");
      expect(second.setCookies).toEqual([]);
    }
  });
});
