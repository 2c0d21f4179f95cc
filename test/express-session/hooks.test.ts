import { ServerResponse } from "node:http";
import express from "express";
import express4 from "express4";
import { afterAll, describe, expect, it } from "vitest";
import session, { MemoryStore } from "../../src/express-session/index.js";
import { sessionMiddleware, sessionOf } from "../../src/http/express.js";
import { createSessions } from "../../src/index.js";
import { endWrapper, freshExpress } from "../http/express-copies.js";
import { Browser, listen } from "./app.js";

const closes: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const close of closes) await close();
});

type Bag = Record<string, unknown>;
const bag = (req: express.Request) => req.session as unknown as Bag;
const dropIn = (store: MemoryStore) =>
  session({ store, resave: false, saveUninitialized: false }) as unknown as express.RequestHandler;

async function serve(app: express.Express): Promise<Browser> {
  const server = await listen(app);
  closes.push(server.close);
  return new Browser(server.base);
}

/** Adds GET /read, answering the session's properties but its cookie. */
function readable(app: express.Express): express.Express {
  app.get("/read", (req, res) => {
    const { cookie: _cookie, ...rest } = bag(req);
    res.json(rest);
  });
  return app;
}

async function read(browser: Browser): Promise<Bag> {
  return JSON.parse((await browser.get("/read")).text) as Bag;
}

describe.each([
  ["express 5", () => express()],
  ["express 4", () => express4() as unknown as express.Express],
] as const)("stowage/express-session on %s: the response hooks", (_name, makeApp) => {
  it("mounted twice on one request's way (app and router): one session, both changes saved, one cookie", async () => {
    const store = new MemoryStore();
    const app = makeApp();
    const router = express.Router();
    const seen: unknown[] = [];
    app.use(dropIn(store));
    app.use((req, _res, next) => {
      seen.push(req.session);
      bag(req).app = 1;
      next();
    });
    router.use(dropIn(store));
    router.get("/", (req, res) => {
      seen.push(req.session);
      bag(req).router = 2;
      res.send("ok");
    });
    app.use(router);
    const browser = await serve(readable(app));
    const answer = await browser.get("/");
    expect(answer.status).toBe(200);
    expect(answer.setCookies).toHaveLength(1);
    expect(seen[0]).toBe(seen[1]);
    expect(await read(browser)).toMatchObject({ app: 1, router: 2 });
  });

  it("res.end wrapped before and after the middleware: every wrapper runs, the one before sees the cookie", async () => {
    const app = makeApp();
    const calls: string[] = [];
    const wrapEnd = endWrapper(calls);
    app.use(wrapEnd("before"));
    app.use(dropIn(new MemoryStore()));
    app.use(wrapEnd("after"));
    app.get("/", (req, res) => {
      bag(req).wrapped = true;
      res.send("ok");
    });
    const browser = await serve(readable(app));
    expect((await browser.get("/")).setCookies).toHaveLength(1);
    expect(calls).toEqual(["after:no cookie", "before:cookie"]);
    expect(await read(browser)).toMatchObject({ wrapped: true });
  });

  it("a sub-app mounted below the middleware, and the middleware inside a mounted sub-app, save", async () => {
    const store = new MemoryStore();
    const app = makeApp();
    const sub = makeApp();
    app.use(dropIn(store));
    sub.get("/deep", (req, res) => {
      bag(req).deep = true;
      res.json({ ok: true });
    });
    app.use("/sub", sub);
    const browser = await serve(readable(app));
    expect((await browser.get("/sub/deep")).text).toBe('{"ok":true}');
    expect(await read(browser)).toMatchObject({ deep: true });

    const outer = makeApp();
    const api = makeApp();
    api.use(dropIn(store));
    api.get("/in", (req, res) => {
      bag(req).api = true;
      res.send("ok");
    });
    outer.use("/api", readable(api));
    const inside = await serve(outer);
    expect((await inside.get("/api/in")).setCookies).toHaveLength(1);
    expect(JSON.parse((await inside.get("/api/read")).text)).toMatchObject({ api: true });
  });

  it("one app on stowage's middleware and one on the drop-in, of the same copy of express, both save; node's ServerResponse is untouched", async () => {
    const end = ServerResponse.prototype.end;
    const writeHead = ServerResponse.prototype.writeHead;
    const sessions = createSessions();
    const native = makeApp();
    native.use(sessionMiddleware(sessions));
    native.get("/", async (req, res) => {
      const s = await sessionOf(req);
      s.set("n", ((s.get("n") as number | undefined) ?? 0) + 1);
      res.send(String(s.get("n")));
    });
    const legacy = makeApp();
    legacy.use(dropIn(new MemoryStore()));
    legacy.get("/", (req, res) => {
      bag(req).n = ((bag(req).n as number | undefined) ?? 0) + 1;
      res.send(String(bag(req).n));
    });
    const plain = makeApp();
    plain.get("/", (_req, res) => {
      res.setHeader("x-plain", "yes");
      res.status(201).send("plain");
    });
    const [a, b, c] = [await serve(native), await serve(legacy), await serve(plain)];
    for (let i = 1; i <= 3; i++) {
      expect((await a.get("/")).text).toBe(String(i));
      expect((await b.get("/")).text).toBe(String(i));
    }
    const answer = await c.get("/");
    expect([answer.status, answer.text, answer.setCookies]).toEqual([201, "plain", []]);
    expect(ServerResponse.prototype.end).toBe(end);
    expect(ServerResponse.prototype.writeHead).toBe(writeHead);
  });
});

describe("stowage/express-session in apps of two copies of express", () => {
  it.each([
    ["express 4 inside express 5", "express", "express4"],
    ["express 5 inside express 4", "express4", "express"],
  ] as const)(
    "%s, called as a handler with the middleware mounted in it too: what it changes is saved",
    async (_name, outerName, innerName) => {
      const store = new MemoryStore();
      const outer = freshExpress(outerName)();
      const inner = freshExpress(innerName)();
      outer.use(dropIn(store));
      readable(outer);
      inner.use(dropIn(store));
      inner.get("/in", (req, res) => {
        bag(req).inner = true;
        res.send("ok");
      });
      outer.use("/inner", (req, res, next) => inner(req, res, next));
      const browser = await serve(outer);
      expect((await browser.get("/inner/in")).setCookies).toHaveLength(1);
      expect(await read(browser)).toMatchObject({ inner: true });
    },
  );
});

describe("stowage/express-session on node:http, without express", () => {
  it("hooks the response itself: the session is saved and its cookie goes out", async () => {
    const middleware = session({ store: new MemoryStore(), resave: false, saveUninitialized: false });
    const server = await listen((req, res) => {
      middleware(req, res, () => {
        const s = (req as unknown as { session: Bag }).session;
        s.n = ((s.n as number | undefined) ?? 0) + 1;
        res.end(String(s.n));
      });
    });
    closes.push(server.close);
    const browser = new Browser(server.base);
    expect((await browser.get("/")).setCookies).toHaveLength(1);
    expect((await browser.get("/")).text).toBe("2");
    expect((await browser.get("/")).text).toBe("3");
  });
});
