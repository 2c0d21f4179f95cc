import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { ConnectionServer } from "../../src/connections/server.js";
import type { SessionStore } from "../../src/core/store.js";
import { createSessions, openStore } from "../../src/index.js";
import { parseClientFrame } from "../../src/protocol/frames.js";
import { MemoryStore } from "../../src/stores/memory/index.js";
import { RedisStore } from "../../src/stores/redis/index.js";
import { SqliteStore } from "../../src/stores/sqlite/index.js";
import { freePort, startRedisServer, stopRedisServer } from "../helpers/redis-server.js";
import { REDIS_URL } from "../helpers/services.js";
import { dropStoreTables, POSTGRES_URL, uniqueTable } from "../stores/postgres-support.js";
import {
  CutProxy,
  type LiveOptions,
  recordConnections,
  retainedHeap,
  sleep,
  startLive,
  TestClient,
  urlOf,
  WIRES,
  type Wire,
  waitUntil,
} from "./harness.js";
import { openRaw, proof, RawSocket, testKey } from "./raw.js";
import { LiveWorker } from "./worker.js";

const dir = mkdtempSync(join(tmpdir(), "stowage-live-"));
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

async function liveOn(store: SessionStore = new MemoryStore(), options: LiveOptions = {}, wire: Wire = "ws") {
  const server = await startLive(store, options, undefined, wire);
  const proxy = await new CutProxy(server.port).start();
  cleanups.push(
    () => server.stop(),
    () => proxy.stop(),
  );
  return { ...server, proxy, url: server.url(proxy.port) };
}

describe.each(WIRES)("replay bounds over %s", (wire) => {
  it("past maxMessages the resume reports the gap, and what is kept arrives in order", async () => {
    const { live, proxy, url } = await liveOn(new MemoryStore(), { replay: { maxMessages: 5 } }, wire);
    const client = new TestClient(url);
    const { id } = await client.opened();
    await live.send(id, { n: 0 });
    await waitUntil(() => client.messages.length === 1);
    proxy.refuse(true);
    proxy.cut();
    await waitUntil(() => !live.connections.has(id), 2000, "the server to see the cut");
    for (let n = 1; n <= 12; n++) await live.send(id, { n });
    proxy.refuse(false);
    const open = await client.opened(2);
    expect(open).toEqual({ id, resumed: true, gap: { after: 1, through: 8 } });
    await waitUntil(() => client.messages.length === 6);
    expect(client.messages).toEqual([{ n: 0 }, { n: 8 }, { n: 9 }, { n: 10 }, { n: 11 }, { n: 12 }]);
    client.conn.close();
  });

  it("within the bounds a resume has no gap", async () => {
    const { live, proxy, url } = await liveOn(new MemoryStore(), {}, wire);
    const client = new TestClient(url);
    const { id } = await client.opened();
    proxy.cut();
    for (let n = 1; n <= 50; n++) await live.send(id, n);
    const open = await client.opened(2);
    expect(open).toEqual({ id, resumed: true });
    await waitUntil(() => client.messages.length === 50);
    expect(client.messages).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    client.conn.close();
  });
});

describe.each(WIRES)("lifetimes and refusals over %s", (wire) => {
  it("a session past its resume window is expired, and the client stops", async () => {
    const { proxy, url } = await liveOn(new MemoryStore(), { resumeWindowMs: 300 }, wire);
    const client = new TestClient(url);
    await client.opened();
    proxy.refuse(true);
    proxy.cut();
    await sleep(700);
    proxy.refuse(false);
    await waitUntil(() => client.closed, 5000, "closed");
    expect(client.closed).toEqual({ reason: "expired" });
    expect(client.opens).toHaveLength(1);
  });

  // The upgrade request and its cookie are WebSocket's; TCP clients authenticate with `auth` (below).
  if (wire === "ws")
    it("authenticate reads the HTTP session from the upgrade's cookie; null refuses and the client stops", async () => {
      const store = new MemoryStore();
      const sessions = createSessions({ store });
      const http = sessions.create();
      http.login("ada", { level: 175 });
      await http.save();
      const seen: (string | undefined)[] = [];
      const server = await startLive(
        store,
        {
          authenticate: (_request, httpSession) => {
            seen.push(httpSession?.userId);
            return httpSession ? { userId: httpSession.userId!, attributes: { from: "http" } } : null;
          },
        },
        sessions,
      );
      cleanups.push(() => server.stop());
      const seenConn = recordConnections(server.live);
      const cookie = `sid=${http.token}`;
      class WithCookie extends WebSocket {
        constructor(url: string) {
          super(url, { headers: { cookie } });
        }
      }
      const client = new TestClient(`ws://127.0.0.1:${server.port}/live`, { WebSocket: WithCookie as never });
      await client.opened();
      const conn = await waitUntil(() => seenConn[0]?.conn);
      expect(conn.userId).toBe("ada");
      expect(conn.session.level).toBe(175);
      expect(conn.session.get("from")).toBe("http");
      const anonymous = new TestClient(`ws://127.0.0.1:${server.port}/live`);
      await waitUntil(() => anonymous.closed, 3000, "refused");
      expect(anonymous.closed).toEqual({ reason: "refused" });
      expect(seen).toEqual(["ada", undefined]);
      client.conn.close();
    });

  it("authenticate gets the client's auth value with the new connection; null refuses and the client stops", async () => {
    const seen: unknown[] = [];
    const { url, live } = await liveOn(
      new MemoryStore(),
      {
        authenticate: (_request, _http, auth) => {
          seen.push(auth);
          const token = (auth as { token?: string } | undefined)?.token;
          return token === "good" ? { userId: "grace", attributes: { via: "auth" } } : null;
        },
      },
      wire,
    );
    const conns = recordConnections(live);
    const client = new TestClient(url, { auth: { token: "good" } });
    await client.opened();
    const conn = await waitUntil(() => conns[0]?.conn);
    expect(conn.userId).toBe("grace");
    expect(conn.session.get("via")).toBe("auth");
    const refused = new TestClient(url, { auth: { token: "bad" } });
    await waitUntil(() => refused.closed, 3000, "refused");
    expect(refused.closed).toEqual({ reason: "refused" });
    expect(seen).toEqual([{ token: "good" }, { token: "bad" }]);
    client.conn.close();
  });

  it("maxConnectionsPerUser bounds the connection sessions of one user: past it, limit", async () => {
    const { url } = await liveOn(
      new MemoryStore(),
      {
        maxConnectionsPerUser: 2,
        authenticate: () => ({ userId: "bounded" }),
      },
      wire,
    );
    const a = new TestClient(url);
    const b = new TestClient(url);
    await a.opened();
    await b.opened();
    const c = new TestClient(url);
    await waitUntil(() => c.closed, 3000, "limit");
    expect(c.closed).toEqual({ reason: "limit" });
    a.conn.close();
    b.conn.close();
  });

  it("conn.session keeps attributes across a resume; login and regenerateId are refused on it", async () => {
    const { live, proxy, url, sessions } = await liveOn(new MemoryStore(), {}, wire);
    const seen = recordConnections(live);
    const client = new TestClient(url);
    const { id } = await client.opened();
    const first = await waitUntil(() => seen[0]);
    first.conn.on("message", () =>
      first.conn.session.set("count", ((first.conn.session.get("count") as number) ?? 0) + 1),
    );
    client.conn.send("a");
    client.conn.send("b");
    await waitUntil(async () => (await sessions.store.get(id))?.attributes.count === 2, 3000, "count stored");
    expect(() => first.conn.session.login("x")).toThrow(/not for a connection session/);
    expect(() => first.conn.session.regenerateId()).toThrow(/not for a connection session/);
    proxy.cut();
    await client.opened(2);
    const second = await waitUntil(() => seen[1]);
    expect(second.conn.id).toBe(id);
    expect(second.conn.session.get("count")).toBe(2);
    client.conn.close();
  });

  it("a value that is not JSON, or larger than the bounds, is INVALID_VALUE at send", async () => {
    const { live, url } = await liveOn(new MemoryStore(), { replay: { maxBytes: 1000 } }, wire);
    const seen = recordConnections(live);
    const client = new TestClient(url);
    const { id } = await client.opened();
    const conn = await waitUntil(() => seen[0]?.conn);
    expect(() => conn.send(1n as never)).toThrow(expect.objectContaining({ code: "INVALID_VALUE" }));
    expect(() => conn.send("x".repeat(2000))).toThrow(expect.objectContaining({ code: "INVALID_VALUE" }));
    await expect(live.send(id, "x".repeat(2000))).rejects.toMatchObject({ code: "INVALID_VALUE" });
    await expect(live.send("AAAAAAAAAAAAAAAAAAAAAA", 1)).rejects.toMatchObject({ code: "SESSION_ENDED" });
    client.conn.close();
  });

  it("the client bounds its send buffer, and needs a WebSocket class where there is no global one", async () => {
    const { proxy, url } = await liveOn(new MemoryStore(), {}, wire);
    const client = new TestClient(url, { maxBuffered: 3 });
    await client.opened();
    proxy.refuse(true);
    proxy.cut();
    await waitUntil(() => client.conn.state === "reconnecting");
    client.conn.send(1);
    client.conn.send(2);
    client.conn.send(3);
    expect(() => client.conn.send(4)).toThrow(/send buffer is full/);
    client.conn.close();
    expect(() => client.conn.send(5)).toThrow(/closed/);
    const { connect } = await import("../../src/client/index.js");
    expect(() => connect("ws://127.0.0.1:1/live")).toThrow(/needs a WebSocket class/);
  });
});

describe.each(WIRES)("junk over %s", (wire) => {
  // Frames that are not valid once a connection is open: parse failures, unknown kinds, wrong types,
  // a handshake frame again, a message number out of order, an ack of something never sent, binary.
  const junk = fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.json({ maxDepth: 3 }),
    fc
      .record({
        t: fc.constantFrom("m", "ack", "new", "resume", "ping", "hello", "x"),
        s: fc.anything(),
        d: fc.anything(),
      })
      .map((f) => JSON.stringify(f) ?? ""),
    fc.integer({ min: 2, max: 1e9 }).map((s) => JSON.stringify({ t: "m", s, d: 1 })),
    fc.integer({ min: 1, max: 1e9 }).map((s) => JSON.stringify({ t: "ack", s })),
    fc.uint8Array({ minLength: 1, maxLength: 64 }),
  );
  const isJunk = (frame: string | Uint8Array) => {
    if (typeof frame !== "string") return true;
    const parsed = parseClientFrame(frame);
    return !(
      parsed?.t === "ping" ||
      (parsed?.t === "ack" && parsed.s === 0) ||
      (parsed?.t === "m" && parsed.s === 1)
    );
  };

  it("10,000 generated junk frames close only their own connection, with malformed, and memory stays flat", async () => {
    const { live, url, sessions } = await liveOn(new MemoryStore(), {}, wire);
    const bystander = new TestClient(url);
    const { id } = await bystander.opened();
    const frames = fc.sample(junk, 12_000).filter(isJunk).slice(0, 10_000);
    expect(frames).toHaveLength(10_000);
    const codes = new Map<number, number>();
    const key = testKey().publicKey;
    const junkSessions: string[] = [];
    let next = 0;
    let sent = 0;
    const heapBefore = retainedHeap();
    const worker = async () => {
      for (let i = next++; i < frames.length; i = next++) {
        const raw = new RawSocket(url);
        await raw.nonce();
        raw.send({ t: "new", key });
        junkSessions.push((await raw.frame("welcome"))!.id as string);
        raw.sendRaw(frames[i]!);
        const { code } = await raw.closed;
        codes.set(code, (codes.get(code) ?? 0) + 1);
        if (i % 1000 === 0) await live.send(id, ++sent);
      }
    };
    await Promise.all(Array.from({ length: 32 }, worker));
    expect([...codes]).toEqual([[4005, 10_000]]);
    await live.send(id, "still here");
    await waitUntil(() => bystander.messages.includes("still here"));
    expect(bystander.messages).toEqual([...Array.from({ length: sent }, (_, i) => i + 1), "still here"]);
    expect(bystander.opens).toHaveLength(1);
    expect(live.connections.size).toBe(1);
    expect(live.handshakes).toBe(0);
    // Each junk connection's session waits in the store for a resume, as any dropped one does; once they
    // are ended, 10,000 closed connections have left nothing behind in the live heap.
    for (let at = 0; at < junkSessions.length; at += 500) {
      await Promise.all(junkSessions.slice(at, at + 500).map((junkId) => sessions.end(junkId)));
    }
    expect(retainedHeap() - heapBefore).toBeLessThan(16 << 20);
    bystander.conn.close();
  }, 180_000);

  it("junk instead of the handshake, and a frame over maxFrameBytes, are malformed", async () => {
    const { url, live } = await liveOn(new MemoryStore(), { maxFrameBytes: 4096 }, wire);
    const rejected: { reason: string }[] = [];
    live.on("rejected", (event) => rejected.push(event));
    const early = new RawSocket(url);
    await early.nonce();
    early.send("{not json");
    expect(await early.frame("rejected")).toEqual({ t: "rejected", reason: "malformed" });
    expect((await early.closed).code).toBe(4005);
    const { socket } = await openRaw(url, testKey());
    socket.send(JSON.stringify({ t: "m", s: 1, d: "x".repeat(10_000) }));
    const closed = await socket.closed;
    expect([4005, 1009]).toContain(closed.code);
    expect(rejected.map((r) => r.reason)).toEqual(["malformed"]);
  });
});

describe.each(["tcp", "tcp+channel"] as const)("the TCP stream over %s", (wire) => {
  it("a length prefix of 4 GiB closes the connection at once, before anything of it is kept", async () => {
    const { url, live } = await liveOn(new MemoryStore(), {}, wire);
    const closes = recordConnections(live);
    const { socket } = await openRaw(url, testKey());
    const heap = retainedHeap();
    // The prefix in clear (not sealed): on the encrypted channel it is read before anything is opened.
    socket.tcp!.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
    const written = { bytes: 0 };
    const pump = setInterval(() => {
      if (socket.tcp!.writable) socket.tcp!.write(Buffer.alloc(1 << 16), () => (written.bytes += 1 << 16));
    }, 1);
    const closed = await socket.closed;
    clearInterval(pump);
    expect(closed.code).toBe(4005);
    await waitUntil(() => closes[0]?.closed);
    expect(closes[0]!.closed).toBe("malformed");
    expect(retainedHeap() - heap).toBeLessThan(16 << 20);
  });

  it("the server's heartbeat cuts a client that stopped talking (half-open), and its session waits for a resume", async () => {
    const { url, live, sessions } = await liveOn(new MemoryStore(), { heartbeatMs: 200 }, wire);
    const closes = recordConnections(live);
    const { id } = await openRaw(url, testKey());
    // The raw client never pings: within two heartbeats the server gives up on it.
    await waitUntil(() => closes[0]?.closed, 2000, "the silent connection to be cut");
    expect(closes[0]!.closed).toBe("lost");
    expect(live.connections.has(id)).toBe(false);
    expect((await sessions.store.get(id))?.connection?.key).toBeDefined();
  });

  it("a frame that stalls half-way is closed after frameTimeoutMs (slowloris), and one cut by the end of the stream is malformed", async () => {
    const { url, live } = await liveOn(new MemoryStore(), { frameTimeoutMs: 200 }, wire);
    const closes = recordConnections(live);
    const slow = await openRaw(url, testKey());
    const start = Date.now();
    slow.socket.tcp!.write(Buffer.from([0, 0, 0, 100, 1, 2]));
    expect((await slow.socket.closed).code).toBe(4005);
    expect(Date.now() - start).toBeGreaterThanOrEqual(150);
    const cut = await openRaw(url, testKey());
    cut.socket.tcp!.end(Buffer.from([0, 0, 0, 100, 1, 2]));
    await waitUntil(() => closes.filter((c) => c.closed).length === 2);
    expect(closes.map((c) => c.closed)).toEqual(["malformed", "malformed"]);
  });

  it("10,000 generated byte streams close only their own connection", async () => {
    const { live, url } = await liveOn(
      new MemoryStore(),
      { frameTimeoutMs: 100, handshakeTimeoutMs: 200 },
      wire,
    );
    const bystander = new TestClient(url);
    const { id } = await bystander.opened();
    const streams = fc.sample(fc.uint8Array({ minLength: 1, maxLength: 96 }), 10_000);
    let next = 0;
    let ended = 0;
    const worker = async () => {
      for (let i = next++; i < streams.length; i = next++) {
        // Half of them where the handshake should be, half after the connection is open.
        const raw = i % 2 === 0 ? new RawSocket(url) : (await openRaw(url, testKey())).socket;
        raw.tcp!.write(streams[i]!);
        await Promise.race([raw.closed, sleep(400)]);
        raw.close();
        ended++;
      }
    };
    await Promise.all(Array.from({ length: 32 }, worker));
    expect(ended).toBe(10_000);
    await live.send(id, "still here");
    await waitUntil(() => bystander.messages.includes("still here"));
    expect(bystander.opens).toHaveLength(1);
    await waitUntil(() => live.connections.size === 1 && live.handshakes === 0, 3000, "nothing left open");
    bystander.conn.close();
  }, 180_000);
});

describe.each(WIRES)("store outages and restarts over %s", (wire) => {
  it("a store outage during a resume answers unavailable; the client keeps trying and resumes after", async () => {
    const port = await freePort();
    const redis = await startRedisServer(port);
    cleanups.push(() => stopRedisServer(redis));
    const store = new RedisStore({ url: `redis://127.0.0.1:${port}`, prefix: "outage:", timeoutMs: 300 });
    const { live, proxy, url } = await liveOn(store, {}, wire);
    const client = new TestClient(url, { maxDelayMs: 100 });
    const { id } = await client.opened();
    await live.send(id, "before");
    await waitUntil(() => client.messages.length === 1);
    redis.child.kill("SIGSTOP");
    try {
      proxy.cut();
      await waitUntil(
        () => client.reconnects.some((r) => r.reason === "unavailable"),
        10_000,
        "an unavailable answer",
      );
    } finally {
      redis.child.kill("SIGCONT");
    }
    const open = await client.opened(2, 10_000);
    expect(open).toEqual({ id, resumed: true });
    await live.send(id, "after");
    await waitUntil(() => client.messages.length === 2);
    expect(client.messages).toEqual(["before", "after"]);
    client.conn.close();
  }, 30_000);

  for (const kind of ["sqlite", "redis"] as const) {
    it(`the server process killed and restarted on the same ${kind} store: the client resumes and gets what was queued`, async () => {
      const url = kind === "sqlite" ? `sqlite:${join(dir, `restart-${wire}.db`)}` : REDIS_URL;
      const scope = kind === "sqlite" ? "-" : `restart-${Date.now()}:`;
      const first = new LiveWorker(url, scope, 0, wire);
      cleanups.push(() => first.kill());
      const proxy = await new CutProxy(await first.port()).start();
      cleanups.push(() => proxy.stop());
      const client = new TestClient(urlOf(wire, proxy.port), { maxDelayMs: 200 });
      const { id } = await client.opened(1, 10_000);
      await first.kill("SIGKILL");
      // Another process queues messages for the session while no server holds it.
      const sessions = createSessions({
        store: await openStore(url, scope === "-" ? {} : { prefix: scope }),
      });
      const sender = new ConnectionServer({ sessions });
      for (const n of [1, 2, 3]) await sender.send(id, { queued: n });
      await sender.close();
      await sessions.close();
      const second = new LiveWorker(url, scope, 0, wire);
      cleanups.push(() => second.kill());
      proxy.targetPort = await second.port();
      const open = await client.opened(2, 15_000);
      expect(open).toEqual({ id, resumed: true });
      await waitUntil(() => client.messages.length === 3, 5000, "queued messages");
      expect(client.messages).toEqual([{ queued: 1 }, { queued: 2 }, { queued: 3 }]);
      client.conn.send("hello again");
      await second.event((e) => e.event === "message" && e.value === "hello again");
      client.conn.close();
      await second.kill("SIGTERM");
    }, 60_000);
  }
});

describe.each(WIRES)("takeover across processes over %s", (wire) => {
  for (const kind of ["redis", "postgres"] as const) {
    it(`on ${kind}: a half-open connection in another process closes with replaced within 1 s of the resume`, async () => {
      const table = uniqueTable("live");
      const url = kind === "redis" ? REDIS_URL : POSTGRES_URL;
      const scope = kind === "redis" ? `takeover-${Date.now()}:` : table;
      if (kind === "postgres") {
        cleanups.push(async () => {
          const pool = new pg.Pool({ connectionString: POSTGRES_URL });
          await dropStoreTables(pool, table);
          await pool.end();
        });
      }
      const other = new LiveWorker(url, scope, 0, wire);
      cleanups.push(() => other.kill());
      const otherPort = await other.port();
      const store = await openStore(url, kind === "redis" ? { prefix: scope } : { table: scope });
      const here = await startLive(store, {}, undefined, wire);
      cleanups.push(() => here.stop());
      const proxy = await new CutProxy(otherPort).start();
      cleanups.push(() => proxy.stop());
      const client = new TestClient(urlOf(wire, proxy.port), { heartbeatMs: 150 });
      const { id } = await client.opened(1, 10_000);
      await other.event((e) => e.event === "connection" && e.id === id);
      proxy.stall();
      proxy.targetPort = here.port;
      await client.opened(2, 10_000);
      const resumedAt = Date.now();
      const closed = await other.event((e) => e.event === "close" && e.id === id, 5000);
      expect(closed.reason).toBe("replaced");
      expect((closed.at as number) - resumedAt).toBeLessThanOrEqual(1000);
      expect(here.live.connections.get(id)?.resumed).toBe(true);
      client.conn.close();
    }, 60_000);
  }
});

describe.each(WIRES)("a dump of the store over %s", (wire) => {
  async function exercise(store: Awaited<ReturnType<typeof openStore>>) {
    const server = await startLive(store, {}, undefined, wire);
    cleanups.push(() => server.stop());
    const url = server.url();
    const first = testKey();
    const { socket, id, resume } = await openRaw(url, first);
    socket.send({ t: "m", s: 1, d: { secret: "attribute" } });
    await socket.frame("ack");
    socket.close();
    const second = testKey();
    const raw = new RawSocket(url, { resume });
    const nonce = await raw.nonce();
    raw.send({
      t: "resume",
      id,
      ack: 0,
      key: second.publicKey,
      proofs: [proof(first, nonce, id, 0, second.publicKey)],
    });
    expect(await raw.frame("resumed")).toMatchObject({ id });
    raw.close();
    await server.live.send(id, "queued");
    if (resume) expect((await store.get(id))?.channel?.algorithm).toBe("x25519-chacha20poly1305");
    return { url, id, keys: [first, second], secret: resume?.secret };
  }

  function assertNoCredential(
    dump: string,
    { keys, id, secret }: { keys: ReturnType<typeof testKey>[]; id: string; secret: Buffer | undefined },
  ) {
    // The dump is real: it has the session and the current public key. It has no private key and no
    // channel secret, in any spelling.
    expect(dump).toContain(id);
    expect(dump).toContain(keys[1]!.publicKey);
    const secrets = [...keys.map((key) => Buffer.from(key.seed, "base64url")), ...(secret ? [secret] : [])];
    for (const bytes of secrets) {
      const spellings = ["base64url", "base64", "hex", "latin1"].map((e) =>
        bytes.toString(e as BufferEncoding),
      );
      for (const spelling of spellings) expect(dump.includes(spelling)).toBe(false);
    }
  }

  async function attackerResume(url: string, id: string) {
    // All an attacker with the dump has is public keys: a proof needs a private key it does not have.
    const attacker = testKey();
    const raw = new RawSocket(url);
    const nonce = await raw.nonce();
    raw.send({
      t: "resume",
      id,
      ack: 0,
      key: attacker.publicKey,
      proofs: [proof(attacker, nonce, id, 0, attacker.publicKey)],
    });
    expect(await raw.frame("rejected")).toMatchObject({ reason: "bad-proof" });
  }

  it("SQLite file and WAL hold no credential that proves possession", async () => {
    const path = join(dir, `dump-${wire}.db`);
    const store = new SqliteStore({ path });
    cleanups.push(() => store.close());
    const exercised = await exercise(store);
    const dump = [path, `${path}-wal`].map((file) => readFileSync(file).toString("latin1")).join("\n");
    assertNoCredential(dump, exercised);
    const { url, id } = exercised;
    await attackerResume(url, id);
  });

  it("Redis keys hold no credential that proves possession", async () => {
    const prefix = `dump-${Date.now()}:`;
    const store = new RedisStore({ url: REDIS_URL, prefix });
    cleanups.push(() => store.close());
    const exercised = await exercise(store);
    const { url, id } = exercised;
    const redis = new Redis(REDIS_URL);
    cleanups.push(() => redis.quit());
    const names = await redis.keys(`${prefix}*`);
    const dumps = await Promise.all(names.map((name) => redis.dumpBuffer(name)));
    const dump = names.map((name, i) => `${name}\n${dumps[i]?.toString("latin1") ?? ""}`).join("\n");
    assertNoCredential(dump, exercised);
    await attackerResume(url, id);
  });

  it("PostgreSQL rows hold no credential that proves possession", async () => {
    const table = uniqueTable("dump");
    const pool = new pg.Pool({ connectionString: POSTGRES_URL });
    cleanups.push(async () => {
      await dropStoreTables(pool, table);
      await pool.end();
    });
    const store = await openStore(POSTGRES_URL, { table });
    cleanups.push(() => store.close());
    const exercised = await exercise(store);
    const { url, id } = exercised;
    const rows = await Promise.all(
      [table, `${table}_outbox_heads`, `${table}_outbox`].map((t) =>
        pool.query(`SELECT row_to_json(x)::text AS r FROM "${t}" x`),
      ),
    );
    assertNoCredential(rows.flatMap((r) => r.rows.map((row) => row.r as string)).join("\n"), exercised);
    await attackerResume(url, id);
  });
});
