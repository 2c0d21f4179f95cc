import { createConnection, createServer } from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { FrameCipher, generateChannelKey } from "../../src/connections/channel.js";
import { createSessions, KeyRing } from "../../src/index.js";
import { MemoryStore } from "../../src/stores/memory/index.js";
import { recordConnections, startLive, TestClient, urlOf, waitUntil } from "./harness.js";
import { openRaw, proof, RawSocket, testKey } from "./raw.js";

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => undefined);
});

async function channelServer(
  options: Parameters<typeof startLive>[1] = {},
  sessions = createSessions({ store: new MemoryStore(), keys: [{ id: "k1", key: KeyRing.generateKey() }] }),
) {
  const server = await startLive(sessions.store, options, sessions, "tcp+channel");
  cleanups.push(() => server.stop());
  return server;
}

/** Resumes session `id` by hand on the channel, with the key the session holds; resolves the answer. */
async function resumeRaw(
  url: string,
  opened: Awaited<ReturnType<typeof openRaw>>,
  key: ReturnType<typeof testKey>,
): Promise<{
  raw: RawSocket;
  answer: Record<string, unknown> | undefined;
  next: ReturnType<typeof testKey>;
}> {
  const raw = new RawSocket(url, { resume: opened.resume });
  const nonce = await raw.nonce();
  const next = testKey();
  raw.send({
    t: "resume",
    id: opened.id,
    ack: 0,
    key: next.publicKey,
    proofs: [proof(key, nonce, opened.id, 0, next.publicKey)],
  });
  const answer = await Promise.race([raw.frame("resumed"), raw.frame("rejected")]);
  return { raw, answer, next };
}

describe("the encrypted channel: frames that do not open", () => {
  async function openConnection() {
    const server = await channelServer();
    const seen = recordConnections(server.live);
    const opened = await openRaw(server.url(), testKey());
    const conn = await waitUntil(() => seen[0]);
    return { server, opened, conn };
  }

  const sealed = (raw: RawSocket, value: unknown) =>
    raw.channel!.send.seal(Buffer.from(JSON.stringify(value)));

  it("a tampered ciphertext closes the connection with malformed; nothing reaches the application", async () => {
    const { opened, conn } = await openConnection();
    const frame = sealed(opened.socket, { t: "m", s: 1, d: "secret" });
    frame[frame.length - 20]! ^= 1;
    opened.socket.tcp!.write(frame);
    expect((await opened.socket.closed).code).toBe(4005);
    await waitUntil(() => conn.closed);
    expect(conn.closed).toBe("malformed");
    expect(conn.messages).toEqual([]);
  });

  it("a replayed frame closes with malformed; the first copy is handled once", async () => {
    const { opened, conn } = await openConnection();
    const frame = sealed(opened.socket, { t: "m", s: 1, d: "once" });
    opened.socket.tcp!.write(frame);
    await waitUntil(() => conn.messages.length === 1);
    opened.socket.tcp!.write(frame);
    expect((await opened.socket.closed).code).toBe(4005);
    expect(conn.closed).toBe("malformed");
    expect(conn.messages).toEqual(["once"]);
  });

  it("reordered frames close with malformed; neither reaches the application", async () => {
    const { opened, conn } = await openConnection();
    const first = sealed(opened.socket, { t: "m", s: 1, d: "a" });
    const second = sealed(opened.socket, { t: "m", s: 2, d: "b" });
    opened.socket.tcp!.write(Buffer.concat([second, first]));
    expect((await opened.socket.closed).code).toBe(4005);
    expect(conn.closed).toBe("malformed");
    expect(conn.messages).toEqual([]);
  });

  it("a truncated frame (its prefix made to match) closes with malformed", async () => {
    const { opened, conn } = await openConnection();
    const frame = sealed(opened.socket, { t: "m", s: 1, d: "truncated" });
    const cut = frame.subarray(0, frame.length - 5);
    cut.writeUInt32BE(cut.length - 4, 0);
    opened.socket.tcp!.write(cut);
    expect((await opened.socket.closed).code).toBe(4005);
    expect(conn.closed).toBe("malformed");
    expect(conn.messages).toEqual([]);
  });

  it("a frame in clear on an encrypted connection closes with malformed", async () => {
    const { opened, conn } = await openConnection();
    const body = Buffer.from(JSON.stringify({ t: "m", s: 1, d: "clear" }));
    const header = Buffer.alloc(4);
    header.writeUInt32BE(body.length, 0);
    opened.socket.tcp!.write(Buffer.concat([header, body]));
    expect((await opened.socket.closed).code).toBe(4005);
    expect(conn.messages).toEqual([]);
  });

  it("a server frame altered on the way closes the client with malformed, and it stops", async () => {
    const server = await channelServer();
    const seen = recordConnections(server.live);
    // A proxy that, once armed, flips one bit in what the server sends.
    let armed = false;
    const flipper = createServer((client) => {
      const upstream = createConnection(server.port, "127.0.0.1");
      client.pipe(upstream);
      upstream.on("data", (chunk: Buffer) => {
        if (armed) chunk[chunk.length - 3]! ^= 1;
        client.write(chunk);
      });
      const drop = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on("error", drop).on("close", drop);
      upstream.on("error", drop).on("close", drop);
    });
    await new Promise<void>((resolve) => flipper.listen(0, "127.0.0.1", resolve));
    cleanups.push(() => new Promise((resolve) => flipper.close(resolve)));
    const port = (flipper.address() as { port: number }).port;
    const client = new TestClient(urlOf("tcp+channel", port));
    const { id } = await client.opened();
    await waitUntil(() => seen[0]);
    armed = true;
    await server.live.send(id, "x".repeat(300));
    await waitUntil(() => client.closed, 3000, "the client to stop");
    expect(client.closed).toEqual({ reason: "malformed" });
    expect(client.messages).toEqual([]);
  });
});

describe("the encrypted channel: fresh keys", () => {
  it("the same plaintext at the same position on a connection and on its resumed successor is different ciphertext", async () => {
    const server = await channelServer();
    const url = server.url();
    const key = testKey();
    const opened = await openRaw(url, key);
    opened.socket.send({ t: "ping" });
    await opened.socket.frame("pong");
    opened.socket.close();
    const { raw, answer } = await resumeRaw(url, opened, key);
    expect(answer).toMatchObject({ t: "resumed", id: opened.id });
    raw.send({ t: "ping" });
    await raw.frame("pong");
    // Frame 2 each way: the ping after new / resume, and the server's pong. Same plaintext, same counter.
    expect(opened.socket.written[1]!.length).toBe(raw.written[1]!.length);
    expect(opened.socket.written[1]!.equals(raw.written[1]!)).toBe(false);
    const pong = (socket: RawSocket) => socket.received.at(-1)!;
    expect(pong(opened.socket).length).toBe(pong(raw).length);
    expect(pong(opened.socket).equals(pong(raw))).toBe(false);
    raw.close();
  });

  it("traffic keys are replaced after the rekey bound, both ways, and every message still arrives once", async () => {
    const server = await channelServer({ channel: { rekey: { frames: 7 } } });
    const seen = recordConnections(server.live);
    const opened = await openRaw(server.url(), testKey());
    const conn = await waitUntil(() => seen[0]);
    for (let s = 1; s <= 100; s++) opened.socket.send({ t: "m", s, d: s });
    for (let n = 1; n <= 100; n++) await conn.conn.send(n);
    await waitUntil(() => conn.messages.length === 100);
    await waitUntil(() => opened.socket.frames.filter((f) => f.t === "m").length === 100);
    expect(conn.messages).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(opened.socket.frames.filter((f) => f.t === "m").map((f) => f.d)).toEqual(
      Array.from({ length: 100 }, (_, i) => i + 1),
    );
    expect(opened.socket.channel!.send.generation).toBeGreaterThanOrEqual(14);
    expect(opened.socket.channel!.receive.generation).toBeGreaterThanOrEqual(14);
  });

  it("a cipher steps to a new key at the bound: the same frame sealed after it is different bytes", () => {
    const key = Buffer.alloc(32, 7);
    const a = new FrameCipher(key, { frames: 2, bytes: 1 << 30 });
    const b = new FrameCipher(key, { frames: 2, bytes: 1 << 30 });
    const plain = Buffer.from("same");
    const sealedA = [a.seal(plain), a.seal(plain), a.seal(plain)];
    expect(b.open(sealedA[0]!.subarray(4))?.toString()).toBe("same");
    expect(b.open(sealedA[1]!.subarray(4))?.toString()).toBe("same");
    expect(b.open(sealedA[2]!.subarray(4))?.toString()).toBe("same");
    expect(a.generation).toBe(1);
    // Frame 3 is frame 1 of the next key: same counter (0), different key, different bytes.
    expect(sealedA[2]!.equals(sealedA[0]!)).toBe(false);
  });
});

describe("the encrypted channel: sealed secrets and key rotation", () => {
  it("a record sealed under the old key resumes once a new key is first, and is re-sealed under it", async () => {
    const store = new MemoryStore();
    const k1 = { id: "k1", key: KeyRing.generateKey() };
    const k2 = { id: "k2", key: KeyRing.generateKey() };
    const before = await channelServer({}, createSessions({ store, keys: [k1] }));
    const key = testKey();
    const opened = await openRaw(before.url(), key);
    opened.socket.close();
    expect((await store.get(opened.id))?.channel?.sealedSecret).toMatch(/^k1\./);
    await before.stop();
    const rotated = await channelServer({}, createSessions({ store, keys: [k2, k1] }));
    const first = await resumeRaw(rotated.url(), opened, key);
    expect(first.answer).toMatchObject({ t: "resumed" });
    first.raw.close();
    const record = await store.get(opened.id);
    expect(record?.channel?.sealedSecret).toMatch(/^k2\./);
    expect(record?.channel?.algorithm).toBe("x25519-chacha20poly1305");
    await rotated.stop();
    // With the old key gone, the session still resumes: its secret is sealed under k2 now.
    const retired = await channelServer({}, createSessions({ store, keys: [k2] }));
    const second = await resumeRaw(retired.url(), opened, first.next);
    expect(second.answer).toMatchObject({ t: "resumed" });
    second.raw.close();
  });

  it("a record whose sealing key is gone is expired, with an event that says why; nothing crashes", async () => {
    const store = new MemoryStore();
    const before = await channelServer(
      {},
      createSessions({ store, keys: [{ id: "k1", key: KeyRing.generateKey() }] }),
    );
    const key = testKey();
    const opened = await openRaw(before.url(), key);
    opened.socket.close();
    await before.stop();
    const after = await channelServer(
      {},
      createSessions({ store, keys: [{ id: "k9", key: KeyRing.generateKey() }] }),
    );
    const rejected: { reason: string; id?: string; detail?: string }[] = [];
    after.live.on("rejected", (event) => rejected.push(event));
    const { answer } = await resumeRaw(after.url(), opened, key);
    expect(answer).toEqual({ t: "rejected", reason: "expired" });
    expect(rejected).toEqual([
      { reason: "expired", id: opened.id, detail: expect.stringMatching(/key the key ring no longer has/) },
    ]);
    // The server goes on: a new session on it works.
    const fresh = await openRaw(after.url(), testKey());
    expect(fresh.id).not.toBe(opened.id);
    fresh.socket.close();
  });

  it("a session with a channel secret does not resume without it: not on a channel without it, not in clear", async () => {
    const sessions = createSessions({
      store: new MemoryStore(),
      keys: [{ id: "k1", key: KeyRing.generateKey() }],
    });
    const server = await channelServer({}, sessions);
    const plain = await startLive(sessions.store, {}, sessions, "tcp");
    cleanups.push(() => plain.stop());
    const key = testKey();
    const opened = await openRaw(server.url(), key);
    opened.socket.close();
    const before = await sessions.store.get(opened.id);
    for (const [url, resume] of [
      [server.url(), undefined],
      [plain.url(), undefined],
    ] as const) {
      const { answer, raw } = await resumeRaw(url, { ...opened, resume }, key);
      expect(answer).toEqual({ t: "rejected", reason: "bad-proof" });
      raw.close();
    }
    expect(await sessions.store.get(opened.id)).toEqual(before);
  });

  it("createTcpConnectionServer with a channel needs the manager's key ring", async () => {
    await expect(
      startLive(new MemoryStore(), {}, createSessions({ store: new MemoryStore() }), "tcp+channel"),
    ).rejects.toThrow(/channel needs the manager's keys option/);
  });
});

describe("the encrypted channel: the server's static key", () => {
  it("a client that pins the server's key connects and resumes; one that pins another key, or none, stops with malformed", async () => {
    const pair = generateChannelKey();
    const server = await channelServer({ channel: { staticKey: pair.privateKey } });
    expect((server.live as unknown as { serverKey: string }).serverKey).toBe(pair.publicKey);
    const url = urlOf("tcp+channel", server.port);
    const pinned = new TestClient(url, { channel: { serverKey: pair.publicKey } });
    const { id } = await pinned.opened();
    await waitUntil(() => server.live.connections.has(id));
    for (const connection of server.live.connections.values()) connection.close("closed");
    expect(await pinned.opened(2)).toEqual({ id, resumed: true });
    const impostor = new TestClient(url, { channel: { serverKey: generateChannelKey().publicKey } });
    const unpinned = new TestClient(url, { channel: true });
    await waitUntil(() => impostor.closed && unpinned.closed, 3000, "both to stop");
    expect(impostor.closed).toEqual({ reason: "malformed" });
    expect(unpinned.closed).toEqual({ reason: "malformed" });
    expect(impostor.opens).toEqual([]);
    pinned.conn.close();
  });

  it("a client that pins a key stops with malformed at a server without one (a downgrade)", async () => {
    const server = await channelServer();
    const client = new TestClient(urlOf("tcp+channel", server.port), {
      channel: { serverKey: generateChannelKey().publicKey },
    });
    await waitUntil(() => client.closed, 3000, "the client to stop");
    expect(client.closed).toEqual({ reason: "malformed" });
  });
});

describe("stowage/tcp options", () => {
  it("bad options are refused with a clear message", async () => {
    const { createTcpConnectionServer } = await import("../../src/connections/tcp-server.js");
    const { connectTcp } = await import("../../src/connections/tcp-client.js");
    const sessions = createSessions({ keys: [{ id: "k1", key: KeyRing.generateKey() }] });
    expect(() => createTcpConnectionServer({ sessions, port: -1 })).toThrow(/port must be/);
    expect(() => createTcpConnectionServer({ sessions, port: 0, channel: { staticKey: "short" } })).toThrow(
      /staticKey must be 32 bytes/,
    );
    expect(() => createTcpConnectionServer({ sessions, port: 0, channel: { rekey: { frames: 0 } } })).toThrow(
      /frames must be/,
    );
    expect(() => connectTcp("http://x:1")).toThrow(/tcp:\/\/host:port/);
    expect(() => connectTcp({ port: 0 })).toThrow(/port from 1 to 65535/);
    expect(() => connectTcp({ port: 1 }, { channel: { serverKey: "nope" } })).toThrow(/serverKey must be/);
  });
});
