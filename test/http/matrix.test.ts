import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Sessions } from "../../src/core/manager.js";
import type { Attributes } from "../../src/core/record.js";
import { issueToken } from "../../src/core/tokens.js";
import { createSessions } from "../../src/index.js";
import { countingStore } from "../helpers/counting-store.js";
import { Client, cookieOf, send } from "./client.js";
import { DOORS, type Door, type RunningDoor, startDoor } from "./doors.js";
import { STORE_KINDS, type StoreKind, TestStores } from "./stores.js";

const stores = new TestStores();
afterAll(() => stores.cleanup());

/**
 * A manager clock the test moves, so rotation and grace windows pass without sleeping. It never runs
 * ahead of the wall clock while an alias is checked: a store dates an alias's end on its own clock.
 */
function movableClock(offset: number) {
  let current = offset;
  return {
    now: () => Date.now() + current,
    set: (ms: number) => {
      current = ms;
    },
  };
}

const ROTATE_EVERY = 60_000;
const GRACE = 5_000;

/** The one behaviour suite, run for every front door on every store. */
function httpBehaviour(door: Door, kind: StoreKind): void {
  let counted: ReturnType<typeof countingStore>;
  let sessions: Sessions<Attributes>;
  let server: RunningDoor;
  const extra: RunningDoor[] = [];

  beforeAll(async () => {
    counted = countingStore(stores.make(kind));
    sessions = createSessions({ store: counted.store });
    server = await startDoor(door, sessions);
  });
  afterAll(async () => {
    await Promise.all([server, ...extra].map((s) => s.close()));
  });

  async function also(
    s: Sessions<Attributes>,
    options: Parameters<typeof startDoor>[2] = {},
  ): Promise<RunningDoor> {
    const started = await startDoor(door, s, options);
    extra.push(started);
    return started;
  }

  /**
   * A door whose manager rotates every ROTATE_EVERY, and a session on it holding a=1 that was created a
   * rotation period ago, so the next commit finds it due. `old` is its cookie.
   */
  async function dueForRotation() {
    const clock = movableClock(-(ROTATE_EVERY + 1));
    const rotating = createSessions({
      store: stores.make(kind),
      rotateEvery: ROTATE_EVERY,
      rotationGraceMs: GRACE,
      clock,
    });
    const app = await also(rotating);
    const client = new Client(app.url);
    await client.post("/set?key=a&value=1");
    const old = client.cookies.get("sid")!;
    clock.set(0);
    return { app, old, clock };
  }

  /** The store methods called while `fn` runs. */
  async function callsDuring(fn: () => Promise<unknown>): Promise<string[]> {
    counted.reset();
    await fn();
    return [...counted.calls];
  }

  it("sends no cookie and writes nothing until something is stored", async () => {
    const client = new Client(server.url);
    const calls = await callsDuring(async () => {
      const answer = await client.get("/whoami");
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({ user: null, attributes: {} });
      expect(answer.setCookies).toEqual([]);
    });
    expect(calls).toEqual([]);
    const writes = await callsDuring(async () => {
      const answer = await client.post("/set?key=color&value=blue");
      expect(answer.setCookies).toHaveLength(1);
    });
    expect(writes).toEqual(["insert"]);
    expect((await client.get("/whoami")).body).toEqual({ user: null, attributes: { color: "blue" } });
  });

  it("a request that never touches its session makes no store call, whatever cookie it sends", async () => {
    const client = new Client(server.url);
    await client.post("/set?key=a&value=1");
    expect(await callsDuring(() => client.get("/peek"))).toEqual([]);
    expect(
      await callsDuring(() => send(server.url, "GET", "/peek", { cookie: "sid=junk; sid=more" })),
    ).toEqual([]);
    expect(await callsDuring(() => send(server.url, "GET", "/csrf-protected"))).toEqual([]);
  });

  it("an unchanged session is read once and not written; a malformed token is not even looked up", async () => {
    const client = new Client(server.url);
    await client.post("/set?key=a&value=1");
    const calls = await callsDuring(async () => {
      const answer = await client.get("/whoami");
      expect(answer.body).toEqual({ user: null, attributes: { a: "1" } });
      expect(answer.setCookies).toEqual([]);
    });
    expect(calls).toEqual(["get"]);
    expect(
      await callsDuring(() => send(server.url, "GET", "/whoami", { cookie: "sid=not-a-token" })),
    ).toEqual([]);
  });

  it("sets an HttpOnly, SameSite=Lax, Path=/ cookie that lives until the absolute expiry", async () => {
    const answer = await send(server.url, "POST", "/set?key=a&value=1");
    const cookie = cookieOf(answer.setCookies[0]!);
    expect(cookie.name).toBe("sid");
    expect(cookie.httpOnly).toBe(true);
    expect(String(cookie.sameSite).toLowerCase()).toBe("lax");
    expect(cookie.path).toBe("/");
    expect(cookie.secure).toBeUndefined();
    expect(cookie.domain).toBeUndefined();
    // Default ttl is 14 days: the cookie must not die at the 30-minute idle expiry while the user is active.
    expect(cookie.maxAge).toBeGreaterThan(14 * 86_400 - 120);
    expect(cookie.maxAge).toBeLessThanOrEqual(14 * 86_400);
    expect(Math.abs(cookie.expires!.getTime() - (Date.now() + cookie.maxAge! * 1000))).toBeLessThan(120_000);
  });

  it("remember me: a 30-day lifetime at login gives a 30-day cookie and outlives the idle timeout; others keep the defaults", async () => {
    const clock = movableClock(0);
    const remembering = createSessions({ store: stores.make(kind), idleTimeout: 60_000, clock });
    const app = await also(remembering);
    const remembered = new Client(app.url);
    const plain = new Client(app.url);
    const long = cookieOf((await remembered.post("/login?user=ada&remember=30")).setCookies[0]!);
    const usual = cookieOf((await plain.post("/login?user=bob")).setCookies[0]!);
    expect(long.maxAge).toBeGreaterThan(30 * 86_400 - 120);
    expect(long.maxAge).toBeLessThanOrEqual(30 * 86_400);
    expect(usual.maxAge).toBeGreaterThan(14 * 86_400 - 120);
    expect(usual.maxAge).toBeLessThanOrEqual(14 * 86_400);
    // Two idle timeouts later, on the manager's clock: the remembered session is there, the other is not.
    clock.set(120_000);
    expect((await remembered.get("/whoami")).body).toMatchObject({ user: "ada" });
    expect((await plain.get("/whoami")).body).toMatchObject({ user: null });
    // Signing out goes back to the manager's lifetimes: the next session idles out as usual.
    await remembered.post("/logout");
    await remembered.post("/set?key=a&value=1");
    clock.set(240_000);
    expect((await remembered.get("/whoami")).body).toMatchObject({ attributes: {} });
  });

  it("on https (X-Forwarded-Proto from a trusted proxy) uses __Host-sid with Secure and no Domain", async () => {
    const secure = await also(sessions, { trustProxy: true });
    const client = new Client(secure.url, { "x-forwarded-proto": "https" });
    const answer = await client.post("/set?key=a&value=1");
    const cookie = cookieOf(answer.setCookies[0]!);
    expect(cookie.name).toBe("__Host-sid");
    expect(cookie.secure).toBe(true);
    expect(cookie.path).toBe("/");
    expect(cookie.domain).toBeUndefined();
    expect((await client.get("/whoami")).body).toEqual({ user: null, attributes: { a: "1" } });
    // On https only the prefixed cookie counts.
    const token = client.cookies.get("__Host-sid")!;
    const plain = await send(secure.url, "GET", "/whoami", {
      "x-forwarded-proto": "https",
      cookie: `sid=${token}`,
    });
    expect(plain.body).toEqual({ user: null, attributes: {} });
    // Without trustProxy the header is ignored.
    const untrusting = await send(server.url, "POST", "/set?key=a&value=1", { "x-forwarded-proto": "https" });
    expect(cookieOf(untrusting.setCookies[0]!).name).toBe("sid");
  });

  it("a Bearer token in Authorization carries the session and never gets a cookie", async () => {
    const client = new Client(server.url);
    await client.post("/set?key=a&value=1");
    const token = client.cookies.get("sid")!;
    const auth = { authorization: `Bearer ${token}` };
    const read = await send(server.url, "GET", "/whoami", auth);
    expect(read.body).toEqual({ user: null, attributes: { a: "1" } });
    expect(read.setCookies).toEqual([]);
    const write = await send(server.url, "POST", "/set?key=b&value=2", auth);
    expect(write.setCookies).toEqual([]);
    expect((await client.get("/whoami")).body).toEqual({ user: null, attributes: { a: "1", b: "2" } });
    // A header-carried request skips CSRF checks: browsers never attach it on their own.
    expect((await send(server.url, "POST", "/csrf-protected", auth)).status).toBe(200);
  });

  it("200 parallel update() calls on one cookie all count", async () => {
    const client = new Client(server.url);
    await client.post("/set?key=a&value=1");
    const answers = await Promise.all(Array.from({ length: 200 }, () => client.post("/incr")));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    const ns = answers.map((a) => (a.body as { n: number }).n).sort((x, y) => x - y);
    expect(ns).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(((await client.get("/whoami")).body as { attributes: { n: number } }).attributes.n).toBe(200);
  });

  it("200 parallel requests each setting their own key leave all 200 keys", async () => {
    const client = new Client(server.url);
    await client.post("/set?key=a&value=1");
    const answers = await Promise.all(
      Array.from({ length: 200 }, (_, i) => client.post(`/set?key=k${i}&value=${i}`)),
    );
    expect(answers.every((a) => a.status === 200 && a.setCookies.length === 0)).toBe(true);
    const { attributes } = (await client.get("/whoami")).body as { attributes: Record<string, string> };
    expect(Object.keys(attributes)).toHaveLength(201);
    for (let i = 0; i < 200; i++) expect(attributes[`k${i}`]).toBe(String(i));
  });

  it("fixation: a token planted before login loads nothing after it, and login sends a new cookie", async () => {
    const attacker = new Client(server.url);
    await attacker.post("/set?key=planted&value=yes");
    const planted = attacker.cookies.get("sid")!;
    const victim = new Client(server.url);
    victim.cookies.set("sid", planted);
    const login = await victim.post("/login?user=alice");
    expect(login.setCookies).toHaveLength(1);
    const fresh = victim.cookies.get("sid")!;
    expect(fresh).not.toBe(planted);
    expect((await victim.get("/whoami")).body).toEqual({ user: "alice", attributes: { planted: "yes" } });
    expect((await attacker.get("/whoami")).body).toEqual({ user: null, attributes: {} });
  });

  it("routine rotation: in-flight requests on the old cookie keep the session; one new cookie; old dies after grace", async () => {
    const { app, old, clock } = await dueForRotation();

    const answers = await Promise.all([
      send(app.url, "POST", "/set?key=b&value=2", { cookie: `sid=${old}` }),
      ...Array.from({ length: 8 }, () => send(app.url, "GET", "/whoami", { cookie: `sid=${old}` })),
    ]);
    for (const answer of answers) expect(answer.status).toBe(200);
    for (const answer of answers.slice(1)) {
      expect((answer.body as { attributes: { a: string } }).attributes.a).toBe("1");
    }
    const cookies = answers.flatMap((a) => a.setCookies).map(cookieOf);
    expect(cookies).toHaveLength(1);
    const rotated = cookies[0]!.value!;
    expect(rotated).not.toBe(old);
    expect(cookies[0]!.maxAge).toBeGreaterThan(0);

    const fresh = new Client(app.url);
    fresh.cookies.set("sid", rotated);
    expect((await fresh.get("/whoami")).body).toEqual({ user: null, attributes: { a: "1", b: "2" } });
    const duringGrace = await send(app.url, "GET", "/whoami", { cookie: `sid=${old}` });
    expect(duringGrace.body).toEqual({ user: null, attributes: { a: "1", b: "2" } });
    // Loaded through the alias: no Set-Cookie, so it cannot overwrite the rotated cookie in the browser.
    expect(duringGrace.setCookies).toEqual([]);

    clock.set(GRACE + 1);
    expect((await send(app.url, "GET", "/whoami", { cookie: `sid=${old}` })).body).toEqual({
      user: null,
      attributes: {},
    });
    expect((await fresh.get("/whoami")).body).toEqual({ user: null, attributes: { a: "1", b: "2" } });
  });

  it("a rotation burst: every in-flight request on the old cookie answers 200 and no increment is lost", async () => {
    const { app, old } = await dueForRotation();
    const answers = await Promise.all([
      ...Array.from({ length: 30 }, () => send(app.url, "POST", "/incr", { cookie: `sid=${old}` })),
      ...Array.from({ length: 10 }, (_, i) =>
        send(app.url, "POST", `/set?key=k${i}&value=${i}`, { cookie: `sid=${old}` }),
      ),
    ]);
    expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200));
    const counts = answers.slice(0, 30).map((a) => (a.body as { n: number }).n);
    expect(new Set(counts).size).toBe(30);
    const after = await send(app.url, "GET", "/whoami", { cookie: `sid=${old}` });
    const attributes = (after.body as { attributes: Record<string, unknown> }).attributes;
    expect(attributes.n).toBe(30);
    for (let i = 0; i < 10; i++) expect(attributes[`k${i}`]).toBe(String(i));
  });

  it("logout clears the cookie and the old token loads nothing", async () => {
    const client = new Client(server.url);
    await client.post("/login?user=bob");
    await client.post("/set?key=a&value=1");
    const before = client.cookies.get("sid")!;
    const out = await client.post("/logout");
    expect(out.setCookies).toHaveLength(1);
    const cleared = cookieOf(out.setCookies[0]!);
    expect(cleared.name).toBe("sid");
    expect(cleared.value).toBe("");
    expect(cleared.maxAge).toBe(0);
    expect(client.cookies.has("sid")).toBe(false);
    expect((await send(server.url, "GET", "/whoami", { cookie: `sid=${before}` })).body).toEqual({
      user: null,
      attributes: {},
    });
  });

  it("end clears the cookie and removes the session", async () => {
    const client = new Client(server.url);
    await client.post("/set?key=a&value=1");
    const before = client.cookies.get("sid")!;
    const ended = await client.post("/end");
    expect(ended.setCookies.map((c) => cookieOf(c).maxAge)).toEqual([0]);
    expect((await send(server.url, "GET", "/whoami", { cookie: `sid=${before}` })).body).toEqual({
      user: null,
      attributes: {},
    });
  });

  it("CSRF: unsafe methods need the session's token in x-csrf-token", async () => {
    const client = new Client(server.url);
    const { csrf } = (await client.get("/csrf")).body as { csrf: string };
    expect(client.cookies.has("sid")).toBe(true);
    expect((await client.post("/csrf-protected")).status).toBe(403);
    const flipped = `${csrf.slice(0, -1)}${csrf.endsWith("A") ? "B" : "A"}`;
    expect((await client.post("/csrf-protected", { "x-csrf-token": flipped })).status).toBe(403);
    expect((await client.post("/csrf-protected", { "x-csrf-token": csrf })).status).toBe(200);
    expect((await client.get("/csrf-protected")).status).toBe(200);
  });

  it("a store outage answers 503 and the server stays up", async () => {
    const down = await also(createSessions({ store: await stores.broken(kind) }));
    const stranger = `sid=${issueToken().token}`;
    const read = await send(down.url, "GET", "/whoami", { cookie: stranger });
    expect(read.status).toBe(503);
    const write = await send(down.url, "POST", "/set?key=a&value=1");
    expect(write.status).toBe(503);
    expect(write.setCookies).toEqual([]);
    expect((await send(down.url, "GET", "/peek", { cookie: stranger })).status).toBe(200);
    expect((await send(down.url, "GET", "/whoami")).status).toBe(200);
  });
}

for (const kind of STORE_KINDS) {
  for (const door of DOORS) {
    describe(`http ${door} on ${kind}`, () => httpBehaviour(door, kind));
  }
}

for (const kind of STORE_KINDS) {
  describe(`parallel routine rotations on ${kind}`, () => {
    it("two requests that find the same session due both keep it, and only one new token is handed out", async () => {
      const clock = movableClock(-(ROTATE_EVERY + 1));
      const sessions = createSessions({ store: stores.make(kind), rotateEvery: ROTATE_EVERY, clock });
      const first = sessions.create();
      first.set("x", 1);
      await sessions.commit(first);
      clock.set(0);
      // Both loads happen before either commit, as for two requests in flight on one cookie.
      const [a, b] = await Promise.all([sessions.load(first.token), sessions.load(first.token)]);
      const written = await Promise.all([sessions.commit(a!), sessions.commit(b!)]);
      expect(written).toEqual([true, true]);
      const tokens = new Set([a!.token, b!.token]);
      expect(tokens.size).toBe(2);
      expect(tokens.has(first.token)).toBe(true);
      for (const token of tokens) expect((await sessions.load(token))?.get("x")).toBe(1);
    });
  });
}
