import { mkdtempSync, rmSync } from "node:fs";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { escapeHtml } from "../../src/demo/html.js";
import { type Demo, startDemo } from "../../src/demo/index.js";
import { RedisStore } from "../../src/stores/redis/index.js";
import { SqliteStore } from "../../src/stores/sqlite/index.js";
import { DemoClient } from "./client.js";

const FIREFOX_MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.1; rv:121.0) Gecko/20100101 Firefox/121.0";
const dir = mkdtempSync(join(tmpdir(), "stowage-demo-"));
let demo: Demo;

beforeAll(async () => {
  demo = await startDemo({ store: new SqliteStore({ path: join(dir, "sessions.db") }), port: 0 });
});

afterAll(async () => {
  await demo?.close();
  rmSync(dir, { recursive: true, force: true });
});

const idOf = (client: DemoClient) => client.token!.split(".")[0]!;

describe("demo app", () => {
  it("signs in by name, escapes it, and shows the session without its token", async () => {
    const browser = new DemoClient(demo.url);
    const signIn = await browser.get("/");
    expect(signIn.status).toBe(200);
    expect(signIn.body).toContain('action="/login"');
    // Looking is free: the sign-in form is guarded by a cookie of its own, and no session is stored.
    expect(browser.token).toBeUndefined();
    expect(browser.cookies.has("demo_signin")).toBe(true);

    const name = `<img src=x onerror=alert(1)> ${Math.random()}`;
    await browser.signIn(name);
    expect(browser.token).toBeDefined();
    const home = await browser.get("/");
    expect(home.status).toBe(200);
    expect(home.body).toContain(`Hello, ${escapeHtml(name)}`);
    expect(home.body).not.toContain("<img src=x");
    expect(home.body).toContain(`<code>${idOf(browser).slice(0, 8)}</code>`);
    expect(home.body).not.toContain(idOf(browser));
    expect(home.body).not.toContain(browser.token!.split(".")[1]!);
    expect(home.body).toContain("Chrome on Linux");
    expect(home.body).toContain("USER (100)");
    expect(home.headers.get("content-security-policy")).toContain("default-src 'none'");

    const session = await demo.sessions.load(browser.token);
    expect(session?.userId).toBe(name);
    expect(session?.get("device")).toBe("Chrome on Linux");
  });

  it("GET /metrics answers Prometheus text without touching a session", async () => {
    const browser = new DemoClient(demo.url);
    await browser.signIn("metrics-user");
    const res = await fetch(`${demo.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/plain");
    expect(res.headers.getSetCookie()).toEqual([]);
    const text = await res.text();
    expect(Number(/^stowage_sessions_created_total (\d+)$/m.exec(text)?.[1])).toBeGreaterThanOrEqual(1);
    expect(text).toMatch(
      /stowage_store_call_duration_seconds_count\{operation="insert",store="sqlite"\} \d+/,
    );
  });

  it("100 anonymous page views write nothing to the store", async () => {
    const store = new SqliteStore({ path: join(dir, "anonymous.db") });
    const quiet = await startDemo({ store, port: 0 });
    try {
      const returning = new DemoClient(quiet.url);
      for (let i = 0; i < 100; i++) {
        const visitor = i % 2 === 0 ? returning : new DemoClient(quiet.url);
        const res = await visitor.get(i % 10 === 9 ? "/devices" : "/");
        expect([200, 303]).toContain(res.status);
        expect(visitor.token).toBeUndefined();
      }
      const rows = store.db.prepare("SELECT count(*) AS n FROM stowage_sessions").get() as { n: number };
      expect(rows.n).toBe(0);
    } finally {
      await quiet.close();
    }
  });

  it("a stale sign-in tab still signs in; a form whose cookie is gone explains and offers a fresh one", async () => {
    const browser = new DemoClient(demo.url);
    const firstTab = await browser.csrf("/");
    await browser.csrf("/"); // a second tab, opened later
    const late = await browser.post("/login", { csrf: firstTab, name: "stale-tab" });
    expect(late.status).toBe(303);
    expect((await demo.sessions.load(browser.token))?.userId).toBe("stale-tab");

    const forgetful = new DemoClient(demo.url);
    const old = await forgetful.csrf("/");
    forgetful.drop("demo_signin");
    const refused = await forgetful.post("/login", { csrf: old, name: "forgetful" });
    expect(refused.status).toBe(403);
    expect(refused.body).toContain("That sign-in form had expired");
    expect(refused.body).toContain('action="/login"');
    const again = await forgetful.post("/login", { csrf: await forgetful.csrf("/"), name: "forgetful" });
    expect(again.status).toBe(303);
  });

  it("a sign-in posted from another site is refused", async () => {
    const browser = new DemoClient(demo.url);
    const csrf = await browser.csrf("/");
    const res = await fetch(`${demo.url}/login`, {
      method: "POST",
      redirect: "manual",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        cookie: `demo_signin=${browser.cookies.get("demo_signin")}`,
        origin: "https://evil.example",
      },
      body: new URLSearchParams({ csrf, name: "victim" }).toString(),
    });
    expect(res.status).toBe(403);
    expect(res.headers.getSetCookie().some((c) => c.startsWith("sid="))).toBe(false);
  });

  it("names: graphemes counted, invisible and direction-changing characters refused", async () => {
    const tryName = async (name: string) => {
      const browser = new DemoClient(demo.url);
      const res = await browser.post("/login", { csrf: await browser.csrf("/"), name });
      return { status: res.status, body: res.body, signedIn: browser.token !== undefined };
    };
    expect((await tryName("😀".repeat(64))).signedIn).toBe(true);
    expect((await tryName("👨‍👩‍👧 family")).signedIn).toBe(true);
    const tooLong = await tryName("😀".repeat(65));
    expect(tooLong).toMatchObject({ status: 400, signedIn: false });
    expect(tooLong.body).toContain("1 to 64 characters");
    for (const hidden of ["\u202eevil", "a\u200bb", "\u2066x\u2069", "x\u061cy", "a\u2060b"]) {
      const refused = await tryName(hidden);
      expect(refused, JSON.stringify(hidden)).toMatchObject({ status: 400, signedIn: false });
      expect(refused.body).toContain("direction-changing");
    }
    // A BOM counts as white space, so it is collapsed into a plain space like any other.
    const bom = new DemoClient(demo.url);
    await bom.post("/login", { csrf: await bom.csrf("/"), name: "b\ufeffom" });
    expect((await demo.sessions.load(bom.token))?.userId).toBe("b om");
  });

  it("times carry their zone", async () => {
    const browser = new DemoClient(demo.url);
    await browser.signIn("zoned");
    expect((await browser.get("/")).body).toMatch(/<time datetime="[^"]+Z">[^<]+ UTC<\/time>/);
  });

  it("the default address answers on 127.0.0.1 and, where there is one, on ::1", async () => {
    const local = await startDemo({ store: new SqliteStore({ path: ":memory:" }), port: 0 });
    try {
      expect(local.url).toBe(`http://localhost:${local.port}`);
      expect((await fetch(`http://127.0.0.1:${local.port}/`)).status).toBe(200);
      const v6 = Object.values(networkInterfaces())
        .flat()
        .some((i) => i?.address === "::1");
      if (v6) expect((await fetch(`http://[::1]:${local.port}/`)).status).toBe(200);
    } finally {
      await local.close();
    }
  });

  it("keeps a counter in the session", async () => {
    const browser = new DemoClient(demo.url);
    await browser.signIn("counter-user");
    const csrf = await browser.csrf("/");
    for (let i = 0; i < 3; i++) {
      const res = await browser.post("/counter", { csrf });
      expect(res.status).toBe(303);
      expect(res.headers.get("location")).toBe("/");
    }
    const home = await browser.get("/");
    expect(home.body).toContain('<div class="value" id="counter">3</div>');
    expect((await demo.sessions.load(browser.token))?.get("counter")).toBe(3);
  });

  it("refuses a form without the session's CSRF token with 403", async () => {
    const browser = new DemoClient(demo.url);
    await browser.signIn("csrf-user");
    const csrf = await browser.csrf("/");
    const missing = await browser.post("/counter", {});
    const wrong = await browser.post("/counter", { csrf: csrf.replace(/^./, csrf[0] === "a" ? "b" : "a") });
    expect(missing.status).toBe(403);
    expect(wrong.status).toBe(403);
    expect(missing.body).toContain("Form expired");
    expect((await demo.sessions.load(browser.token))?.get("counter")).toBeUndefined();

    const stranger = new DemoClient(demo.url);
    const login = await stranger.post("/login", { name: "mallory" });
    expect(login.status).toBe(403);
    expect((await stranger.get("/")).body).toContain('action="/login"');
  });

  it("lists the user's devices and revokes another one", async () => {
    const user = `dev-${Math.random()}`;
    const laptop = new DemoClient(demo.url);
    const phone = new DemoClient(demo.url, FIREFOX_MAC);
    await laptop.signIn(user);
    await phone.signIn(user);

    const list = await laptop.get("/devices");
    expect(list.status).toBe(200);
    expect(list.body).toContain("Chrome on Linux");
    expect(list.body).toContain("Firefox on macOS");
    expect(list.body.match(/This device/g)).toHaveLength(1);
    expect(list.body).toContain(`value="${idOf(phone).slice(0, 8)}"`);
    expect(list.body).not.toContain(`value="${idOf(laptop).slice(0, 8)}"`);

    const revoked = await laptop.post("/devices/revoke", {
      csrf: await laptop.csrf("/devices"),
      id: idOf(phone).slice(0, 8),
    });
    expect(revoked.status).toBe(303);
    expect(revoked.headers.get("location")).toBe("/devices");
    const after = await laptop.get("/devices");
    expect(after.body).toContain("Firefox on macOS (");
    expect(after.body).toContain("is signed out.");
    expect(after.body.match(/<li>/g)).toHaveLength(1);

    expect(await demo.sessions.load(phone.token)).toBeNull();
    const phoneHome = await phone.get("/");
    expect(phoneHome.body).toContain('action="/login"');
  });

  it("never revokes another user's session", async () => {
    const alice = new DemoClient(demo.url);
    const mallory = new DemoClient(demo.url);
    await alice.signIn(`alice-${Math.random()}`);
    await mallory.signIn(`mallory-${Math.random()}`);
    const res = await mallory.post("/devices/revoke", {
      csrf: await mallory.csrf("/devices"),
      id: idOf(alice).slice(0, 8),
    });
    expect(res.status).toBe(303);
    expect((await mallory.get("/devices")).body).toContain("That device is no longer signed in.");
    expect(await demo.sessions.load(alice.token)).not.toBeNull();
  });

  it("signs out this device, or every device", async () => {
    const browser = new DemoClient(demo.url);
    await browser.signIn("leaving");
    const token = browser.token!;
    const out = await browser.post("/logout", { csrf: await browser.csrf("/") });
    expect(out.status).toBe(303);
    expect(out.headers.getSetCookie().join()).toMatch(/sid=;|Max-Age=0/i);
    expect(browser.token).toBeUndefined();
    expect(await demo.sessions.load(token)).toBeNull();
    expect((await browser.get("/")).body).toContain('action="/login"');

    const user = `everywhere-${Math.random()}`;
    const a = new DemoClient(demo.url);
    const b = new DemoClient(demo.url, FIREFOX_MAC);
    await a.signIn(user);
    await b.signIn(user);
    const tokens = [a.token, b.token];
    const all = await a.post("/logout-all", { csrf: await a.csrf("/") });
    expect(all.status).toBe(303);
    for (const t of tokens) expect(await demo.sessions.load(t)).toBeNull();
    expect(await demo.sessions.listForUser(user)).toEqual([]);
    expect((await b.get("/")).body).toContain('action="/login"');
  });

  it("answers 404, 405, and serves the stylesheet without touching the session", async () => {
    const browser = new DemoClient(demo.url);
    const missing = await browser.get("/nope");
    expect(missing.status).toBe(404);
    expect(missing.body).toContain("Page not found");
    const wrongMethod = await browser.get("/login");
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get("allow")).toBe("POST");
    const css = await browser.get("/style.css");
    expect(css.status).toBe(200);
    expect(css.headers.get("content-type")).toContain("text/css");
    expect(browser.cookies.size).toBe(0);
  });

  it("answers 503 with its page when the store is unreachable", async () => {
    // A real Redis client pointed at a closed port: every call fails with STORE_UNAVAILABLE.
    const down = await startDemo({
      store: new RedisStore({ url: "redis://127.0.0.1:1", timeoutMs: 300 }),
      port: 0,
    });
    try {
      // A first visit needs no store: the sign-in page still shows, and no session cookie is set.
      const fresh = new DemoClient(down.url);
      const first = await fresh.get("/");
      expect(first.status).toBe(200);
      expect(first.body).toContain('action="/login"');
      expect(fresh.token).toBeUndefined();
      const signIn = await fresh.post("/login", { csrf: await fresh.csrf("/"), name: "someone" });
      expect(signIn.status).toBe(503);
      expect(signIn.body).toContain("Sessions are unavailable");

      const returning = new DemoClient(down.url);
      returning.cookies.set("sid", `${"A".repeat(22)}.${"A".repeat(43)}`);
      const again = await returning.get("/");
      expect(again.status).toBe(503);
      expect(again.body).toContain("Sessions are unavailable");
    } finally {
      await down.close();
    }
  });
});
