import flash from "connect-flash";
import { RedisStore as ConnectRedisStore } from "connect-redis";
import express from "express";
import legacySession from "express-session";
import fc from "fast-check";
import passport from "passport";
import { Strategy as LocalStrategy } from "passport-local";
import { createClient } from "redis";
import { afterAll, describe, expect, it } from "vitest";
import type { SessionDelta } from "../../src/core/store.js";
import session, { MemoryStore, type SessionOptions, StowageStore } from "../../src/express-session/index.js";
import { createSessions } from "../../src/index.js";
import { REDIS_URL } from "../helpers/services.js";
import { STORE_KINDS, TestStores } from "../http/stores.js";
import { Browser, listen } from "./app.js";

const stores = new TestStores();
const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  await stores.cleanup();
});

type Bag = Record<string, unknown>;

async function start(options: SessionOptions, routes: (app: express.Express) => void): Promise<string> {
  const app = express();
  app.use(session({ resave: false, saveUninitialized: false, ...options }));
  routes(app);
  app.use((error: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    res.status(500).end(`error: ${error.message}`);
  });
  const server = await listen(app);
  cleanups.push(server.close);
  return server.base;
}

function bag(req: express.Request): Bag {
  return req.session as unknown as Bag;
}

describe.each(STORE_KINDS)("stowage/express-session on %s", (kind) => {
  it("keeps every property of 100 parallel requests on one cookie, each setting its own", async () => {
    const store = stores.make(kind);
    const base = await start({ store }, (app) => {
      app.post("/start", (req, res) => {
        bag(req).started = true;
        res.end("ok");
      });
      app.post("/set/:key", async (req, res) => {
        // Every request has read the session before any writes: a whole-session write would lose keys.
        await new Promise((resolve) => setTimeout(resolve, 50));
        bag(req)[req.params.key as string] = Number(req.params.key.slice(1));
        res.end("ok");
      });
      app.get("/keys", (req, res) => res.json(Object.keys(req.session).sort()));
    });
    const browser = new Browser(base);
    await browser.post("/start");
    const cookie = browser.cookies.get("connect.sid")!;
    const answers = await Promise.all(
      Array.from({ length: 100 }, (_, i) => {
        const other = new Browser(base);
        other.cookies.set("connect.sid", cookie);
        return other.post(`/set/k${i}`);
      }),
    );
    expect(answers.every((a) => a.status === 200)).toBe(true);
    const keys = JSON.parse((await browser.get("/keys")).text) as string[];
    expect(keys).toEqual(["cookie", "started", ...Array.from({ length: 100 }, (_, i) => `k${i}`)].sort());
  });

  it("a save writes only what changed: one changed property is one key of the store's commit", async () => {
    const inner = stores.make(kind);
    const commits: SessionDelta[] = [];
    const store = new Proxy(inner, {
      get(target, key, receiver) {
        const value = Reflect.get(target, key, receiver);
        if (typeof value !== "function") return value;
        return (...args: unknown[]) => {
          if (key === "commit" || key === "commitNow") commits.push(args[1] as SessionDelta);
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const base = await start({ store, cookie: { maxAge: 60_000 } }, (app) => {
      app.post("/fill", (req, res) => {
        Object.assign(bag(req), { profile: { name: "Ada", roles: ["admin"] }, cart: ["book"], n: 0 });
        res.end("ok");
      });
      app.post("/count", (req, res) => {
        bag(req).n = (bag(req).n as number) + 1;
        res.end(String(bag(req).n));
      });
      app.post("/cart", (req, res) => {
        (bag(req).cart as string[]).push("pen");
        res.end("ok");
      });
      app.get("/all", (req, res) => res.json(req.session));
    });
    const browser = new Browser(base);
    await browser.post("/fill");
    commits.length = 0;
    expect((await browser.post("/count")).text).toBe("1");
    await browser.post("/cart");
    expect(commits.map((c) => Object.keys(c.set ?? {}))).toEqual([["n"], ["cart"]]);
    expect(commits.every((c) => c.unset === undefined)).toBe(true);
    const all = JSON.parse((await browser.get("/all")).text) as Record<string, unknown>;
    expect(all).toMatchObject({ profile: { name: "Ada", roles: ["admin"] }, cart: ["book", "pen"], n: 1 });
  });

  it("destroy ends the session in the store; regenerate gives a new id and keeps nothing", async () => {
    const store = stores.make(kind);
    const base = await start({ store }, (app) => {
      app.post("/fill", (req, res) => {
        bag(req).cart = ["book"];
        res.end(req.sessionID);
      });
      app.get("/cart", (req, res) => res.json(bag(req).cart ?? null));
      app.post("/regenerate", (req, res, next) =>
        req.session.regenerate((error) => (error ? next(error) : res.end(req.sessionID))),
      );
      app.post("/destroy", (req, res, next) =>
        req.session.destroy((error) => (error ? next(error) : res.end("gone"))),
      );
    });
    const browser = new Browser(base);
    const first = (await browser.post("/fill")).text;
    expect(await store.get(first)).toBeDefined();
    const cookie = browser.cookies.get("connect.sid")!;
    const second = (await browser.post("/regenerate")).text;
    expect(second).not.toBe(first);
    expect(await store.get(first)).toBeUndefined();
    // The new session is empty, and the old cookie names nothing any more.
    expect((await browser.get("/cart")).text).toBe("null");
    const stale = new Browser(base);
    stale.cookies.set("connect.sid", cookie);
    expect((await stale.get("/cart")).text).toBe("null");

    await browser.post("/fill");
    const third = browser.sid()!;
    expect((await browser.post("/destroy")).text).toBe("gone");
    expect(await store.get(third)).toBeUndefined();
    expect((await browser.get("/cart")).text).toBe("null");
  });

  it("a tampered cookie loads nothing and leaves the session as it was; the store keeps no secret", async () => {
    const store = stores.make(kind);
    const base = await start({ store }, (app) => {
      app.post("/fill", (req, res) => {
        bag(req).cart = ["book"];
        res.end("ok");
      });
      app.get("/cart", (req, res) => res.json(bag(req).cart ?? null));
    });
    const browser = new Browser(base);
    await browser.post("/fill");
    const value = browser.cookies.get("connect.sid")!;
    const secret = value.slice(value.lastIndexOf(".") + 1);
    const forged = `${value.slice(0, -1)}${value.endsWith("A") ? "B" : "A"}`;
    const intruder = new Browser(base);
    intruder.cookies.set("connect.sid", forged);
    expect((await intruder.get("/cart")).text).toBe("null");
    expect((await browser.get("/cart")).text).toBe('["book"]');
    const record = await store.get(browser.sid()!);
    expect(JSON.stringify(record)).not.toContain(secret);
  });
});

describe("stowage/express-session", () => {
  it("answers malformed cookies with a new session, never an error", async () => {
    const base = await start({}, (app) => app.get("/", (req, res) => res.end(typeof req.session)));
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 120 }), async (junk) => {
        const browser = new Browser(base);
        browser.cookies.set("connect.sid", junk);
        const reply = await browser.get("/");
        expect(reply.status).toBe(200);
        expect(reply.text).toBe("object");
      }),
      { numRuns: 200 },
    );
  });

  it("passport 0.7 + passport-local: log in (new id), a protected route, log out, log in again", async () => {
    const store = new MemoryStore();
    const calls = { regenerate: 0, set: 0 };
    const regenerate = store.regenerate.bind(store);
    const set = store.set.bind(store);
    store.regenerate = (req, cb) => {
      calls.regenerate++;
      regenerate(req, cb);
    };
    store.set = (sid, data, cb) => {
      calls.set++;
      set(sid, data, cb);
    };
    const auth = new passport.Passport();
    auth.use(
      new LocalStrategy({ usernameField: "u", passwordField: "p" }, (user, password, done) =>
        done(null, password === "right" ? { id: user } : false),
      ),
    );
    auth.serializeUser((user, done) => done(null, (user as { id: string }).id));
    auth.deserializeUser((id: string, done) => done(null, { id }));
    const base = await start({ store, secret: "unused on a stowage store" }, (app) => {
      app.use(auth.session());
      app.post("/login", auth.authenticate("local", { successRedirect: "/me", failureRedirect: "/denied" }));
      app.get("/me", (req, res) =>
        req.user ? res.end(`hello ${(req.user as { id: string }).id}`) : res.status(401).end("who?"),
      );
      app.post("/logout", (req, res, next) =>
        req.logout((error) => (error ? next(error) : res.redirect("/me"))),
      );
      app.post("/visit", (req, res) => {
        bag(req).visited = true;
        res.end("ok");
      });
    });
    const browser = new Browser(base);
    await browser.post("/visit");
    const anonymous = browser.sid();
    expect((await browser.get("/me")).status).toBe(401);

    const wrong = await browser.post("/login?u=ada&p=wrong");
    expect(wrong.location).toBe("/denied");

    const login = await browser.post("/login?u=ada&p=right");
    expect(login.status).toBe(302);
    expect(login.location).toBe("/me");
    expect(calls.regenerate).toBe(1);
    expect(calls.set).toBeGreaterThanOrEqual(1);
    const signedIn = browser.sid();
    expect(signedIn).not.toBe(anonymous);
    expect((await browser.get("/me")).text).toBe("hello ada");
    // The old anonymous session is gone: a copy of its cookie is not signed in.
    expect(await store.store.get(anonymous!)).toBeUndefined();

    // passport.user is the record's signed-in user: a manager on the same store sees and ends it.
    const sessions = createSessions({ store: store.store });
    expect((await sessions.listForUser("ada")).map((s) => s.id)).toEqual([signedIn]);

    const logout = await browser.post("/logout");
    expect(logout.location).toBe("/me");
    expect((await browser.get("/me")).status).toBe(401);
    expect(await sessions.listForUser("ada")).toEqual([]);

    await browser.post("/login?u=ada&p=right");
    expect((await browser.get("/me")).text).toBe("hello ada");
    expect(browser.sid()).not.toBe(signedIn);
    expect(await sessions.endAllForUser("ada")).toBe(1);
    expect((await browser.get("/me")).status).toBe(401);
  });

  it("connect-flash: a message survives one redirect and is then gone", async () => {
    const base = await start({}, (app) => {
      app.use(flash());
      app.post("/save", (req, res) => {
        req.flash("info", "saved!");
        res.redirect("/show");
      });
      app.get("/show", (req, res) => res.json(req.flash("info")));
    });
    const browser = new Browser(base);
    const saved = await browser.post("/save");
    expect(saved.status).toBe(302);
    expect((await browser.get(saved.location!)).text).toBe('["saved!"]');
    expect((await browser.get("/show")).text).toBe("[]");
  });

  it("remember me: a 30-day session's cookie lasts 30 days while others keep the default; domain and path are set", async () => {
    const DAY = 86_400_000;
    const base = await start(
      { cookie: { maxAge: DAY, domain: "127.0.0.1", path: "/", sameSite: "strict", httpOnly: true } },
      (app) => {
        app.post("/login", (req, res) => {
          if (req.query.remember) req.session.cookie.maxAge = 30 * DAY;
          bag(req).user = "ada";
          res.end("ok");
        });
      },
    );
    const remembered = (await new Browser(base).post("/login?remember=1")).setCookies[0]!;
    const plain = (await new Browser(base).post("/login")).setCookies[0]!;
    const lifetime = (raw: string) => Date.parse(/Expires=([^;]+)/.exec(raw)![1]!) - Date.now();
    expect(lifetime(remembered)).toBeGreaterThan(29.9 * DAY);
    expect(lifetime(plain)).toBeLessThan(1.01 * DAY);
    expect(plain).toContain("Domain=127.0.0.1");
    expect(plain).toContain("SameSite=Strict");
    expect(plain).toContain("HttpOnly");
  });

  it("a per-session maxAge alone moves the store's expiry; the cookie goes out with a change, as express-session", async () => {
    const DAY = 86_400_000;
    const store = new MemoryStore();
    const base = await start({ store }, (app) => {
      app.post("/fill", (req, res) => {
        bag(req).user = "ada";
        res.end(req.sessionID);
      });
      app.post("/remember", (req, res) => {
        req.session.cookie.maxAge = 30 * DAY;
        if (req.query.change) bag(req).remembered = true;
        res.end("ok");
      });
    });
    const browser = new Browser(base);
    const sid = (await browser.post("/fill")).text;
    const quiet = await browser.post("/remember");
    expect(quiet.setCookies).toEqual([]);
    const idle = (await store.store.get(sid))!.idleExpiresAt - Date.now();
    expect(idle).toBeGreaterThan(29.9 * DAY);
    const changed = await browser.post("/remember?change=1");
    expect(changed.setCookies).toHaveLength(1);
    expect(Date.parse(/Expires=([^;]+)/.exec(changed.setCookies[0]!)![1]!) - Date.now()).toBeGreaterThan(
      29.9 * DAY,
    );
  });

  it("the stowage store keeps a session until its cookie expires, and not after", async () => {
    const store = new MemoryStore();
    const base = await start({ store, cookie: { maxAge: 300 } }, (app) => {
      app.post("/fill", (req, res) => {
        bag(req).n = 1;
        res.end("ok");
      });
      app.get("/n", (req, res) => res.json(bag(req).n ?? null));
    });
    const browser = new Browser(base);
    await browser.post("/fill");
    expect((await browser.get("/n")).text).toBe("1");
    await new Promise((resolve) => setTimeout(resolve, 400));
    const stale = new Browser(base);
    stale.cookies.set("connect.sid", browser.cookies.get("connect.sid")!);
    expect((await stale.get("/n")).text).toBe("null");
  });

  it("a store outage reaches express's error handler; the process stays up", async () => {
    const base = await start({ store: await stores.broken("redis") }, (app) => {
      app.post("/fill", (req, res) => {
        bag(req).n = 1;
        res.end("ok");
      });
      app.get("/", (_req, res) => res.end("fine"));
    });
    const browser = new Browser(base);
    browser.cookies.set("connect.sid", `s:${"a".repeat(22)}.${"b".repeat(43)}`);
    const reply = await browser.get("/");
    expect(reply.status).toBe(500);
    expect(reply.text).toMatch(/^error: /);
    expect(reply.text).not.toContain("b".repeat(43));
  });

  it("runs an express-session store as express-session does: signed cookies, whole-session writes", async () => {
    const legacy = new legacySession.MemoryStore();
    const base = await start({ store: legacy as never, secret: "keyboard cat" }, (app) => {
      app.post("/fill", (req, res) => {
        bag(req).cart = ["book"];
        res.end(req.sessionID);
      });
      app.get("/cart", (req, res) => res.json(bag(req).cart ?? null));
    });
    const browser = new Browser(base);
    const sid = (await browser.post("/fill")).text;
    expect(browser.cookies.get("connect.sid")).toMatch(new RegExp(`^s:${sid}\\.`));
    const stored = await new Promise((resolve) => legacy.get(sid, (_e, s) => resolve(s)));
    expect(stored).toMatchObject({ cart: ["book"] });
    expect((await browser.get("/cart")).text).toBe('["book"]');
    const forged = new Browser(base);
    forged.cookies.set("connect.sid", `s:${sid}.forgedsignature`);
    expect((await forged.get("/cart")).text).toBe("null");
    expect(() => session({ store: legacy as never })).not.toThrow();
  });

  it.each(["memory", "connect-redis"] as const)(
    "moves an express-session session (%s) over on first sight, signed in; a tampered cookie moves nothing",
    async (kind) => {
      let old: legacySession.Store;
      if (kind === "memory") old = new legacySession.MemoryStore();
      else {
        const client = createClient({ url: REDIS_URL });
        await client.connect();
        cleanups.push(() => client.quit());
        old = new ConnectRedisStore({ client, prefix: `drop-in-move:${Date.now()}:` });
      }
      const secret = "the old secret";
      const before = express();
      before.use(legacySession({ secret, store: old, resave: false, saveUninitialized: false }));
      before.post("/login", (req, res) => {
        Object.assign(bag(req), { passport: { user: "ada" }, cart: ["book"] });
        res.end("ok");
      });
      const oldServer = await listen(before);
      cleanups.push(oldServer.close);
      const browser = new Browser(oldServer.base);
      await browser.post("/login");
      const oldCookie = browser.cookies.get("connect.sid")!;
      const oldSid = oldCookie.slice(2, oldCookie.lastIndexOf("."));

      const store = new MemoryStore();
      const base = await start({ store, migrate: { store: old, secret } }, (app) =>
        app.get("/me", (req, res) =>
          res.json({ passport: bag(req).passport ?? null, cart: bag(req).cart ?? null }),
        ),
      );
      const intruder = new Browser(base);
      intruder.cookies.set("connect.sid", `${oldCookie.slice(0, -2)}xx`);
      expect(JSON.parse((await intruder.get("/me")).text)).toEqual({ passport: null, cart: null });

      const after = new Browser(base);
      after.cookies.set("connect.sid", oldCookie);
      expect(JSON.parse((await after.get("/me")).text)).toEqual({
        passport: { user: "ada" },
        cart: ["book"],
      });
      expect(after.cookies.get("connect.sid")).not.toBe(oldCookie);
      expect(JSON.parse((await after.get("/me")).text)).toEqual({
        passport: { user: "ada" },
        cart: ["book"],
      });
      expect((await createSessions({ store: store.store }).listForUser("ada")).length).toBe(1);
      // Moved once: the old record is gone, so the old cookie now moves nothing.
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(await new Promise((resolve) => old.get(oldSid, (_e, s) => resolve(s ?? null)))).toBeNull();
      const again = new Browser(base);
      again.cookies.set("connect.sid", oldCookie);
      expect(JSON.parse((await again.get("/me")).text)).toEqual({ passport: null, cart: null });
    },
  );

  it("a session ended while a request held it stays ended: that request's save writes nothing", async () => {
    const store = new MemoryStore();
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const base = await start({ store }, (app) => {
      app.post("/fill", (req, res) => {
        bag(req).n = 1;
        res.end(req.sessionID);
      });
      app.post("/slow", async (req, res) => {
        await held;
        bag(req).n = 2;
        res.end("late");
      });
      app.post("/destroy", (req, res) => req.session.destroy(() => res.end("gone")));
    });
    const browser = new Browser(base);
    const sid = (await browser.post("/fill")).text;
    const slow = browser.post("/slow");
    await new Promise((resolve) => setTimeout(resolve, 50));
    await browser.post("/destroy");
    release();
    expect((await slow).text).toBe("late");
    expect(await store.store.get(sid)).toBeUndefined();
  });

  it("a genid that names an id twice is refused by the store, not let overwrite the other session", async () => {
    const store = new MemoryStore();
    const base = await start({ store, genid: () => "same-id" }, (app) =>
      app.post("/fill", (req, res) => {
        bag(req).who = req.query.who;
        res.end("ok");
      }),
    );
    expect((await new Browser(base).post("/fill?who=first")).status).toBe(200);
    const second = await new Browser(base).post("/fill?who=second");
    expect((await store.store.get("same-id"))?.attributes.who).toBe("first");
    // The failed insert reaches express after the response, as a failed express-session save does.
    expect(second.status).toBe(200);
  });

  it("an old store that fails while moving is a request error, and the old session stays", async () => {
    const broken = {
      get: (_sid: string, cb: (error: unknown) => void) => cb(new Error("old store down")),
      destroy: (_sid: string, cb?: (error?: unknown) => void) => cb?.(),
    };
    const base = await start({ migrate: { store: broken, secret: "old" } }, (app) =>
      app.get("/", (_req, res) => res.end("fine")),
    );
    const browser = new Browser(base);
    const { sign } = await import("../../src/http/signature.js");
    browser.cookies.set("connect.sid", `s:${sign("an-old-sid", "old")}`);
    const reply = await browser.get("/");
    expect(reply.status).toBe(500);
    expect(reply.text).toContain("express-session store could not be read");
    // An unsigned old cookie never reaches the old store.
    const plain = new Browser(base);
    plain.cookies.set("connect.sid", "s:an-old-sid.nosignature");
    expect((await plain.get("/")).text).toBe("fine");
  });

  it("takes connect-redis, as express-session does, and refuses what is no store", async () => {
    const client = createClient({ url: REDIS_URL });
    await client.connect();
    cleanups.push(() => client.quit());
    const store = new ConnectRedisStore({ client, prefix: `drop-in:${Date.now()}:` });
    const base = await start({ store: store as never, secret: "s" }, (app) => {
      app.post("/fill", (req, res) => {
        bag(req).n = 7;
        res.end("ok");
      });
      app.get("/n", (req, res) => res.json(bag(req).n ?? null));
    });
    const browser = new Browser(base);
    await browser.post("/fill");
    expect((await browser.get("/n")).text).toBe("7");
    expect(() => session({ store: {} as never })).toThrow(/store must be/);
    expect(() => session({ unset: "bogus" as never })).toThrow(/unset option/);
    expect(() => session({ genid: "x" as never })).toThrow(/genid option/);
    expect(() => session({ store: store as never, secret: "s", migrate: { store, secret: "s" } })).toThrow(
      /migrate option needs a stowage store/,
    );
  });

  it("a StowageStore wraps any stowage store; the default export carries express-session's classes", () => {
    expect(session.MemoryStore).toBe(MemoryStore);
    expect(session.StowageStore).toBe(StowageStore);
    expect(typeof session.Store).toBe("function");
    expect(new MemoryStore()).toBeInstanceOf(session.Store);
  });
});
