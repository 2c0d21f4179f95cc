import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Sessions } from "../../src/core/manager.js";
import type { SessionStore } from "../../src/core/store.js";
import { RedisStore } from "../../src/stores/redis/index.js";
import { type RedisClusterHandle, startRedisCluster } from "../helpers/redis-cluster.js";
import { STORE_KINDS, TestStores } from "../http/stores.js";
import {
  CutProxy,
  recordConnections,
  sleep,
  startLive,
  TestClient,
  userOf,
  type Wire,
  waitUntil,
} from "./harness.js";
import { openRaw, proof, RawSocket, testKey } from "./raw.js";

const KINDS = [...STORE_KINDS, "redis-cluster"] as const;
type Kind = (typeof KINDS)[number];

const stores = new TestStores();
let cluster: RedisClusterHandle | undefined;
const clusterStores: SessionStore[] = [];

beforeAll(async () => {
  cluster = await startRedisCluster(3);
}, 60_000);

afterAll(async () => {
  await Promise.allSettled(clusterStores.map((s) => s.close()));
  await cluster?.stop();
  await stores.cleanup();
});

function makeStore(kind: Kind): SessionStore {
  if (kind !== "redis-cluster") return stores.make(kind);
  const store = new RedisStore({ cluster: { nodes: cluster!.nodes }, prefix: `live-${Date.now()}:` });
  clusterStores.push(store);
  return store;
}

/** Numbers 1..n. */
const upTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

// WebSocket on every store; TCP, in clear and encrypted, on the in-process store, SQLite and Redis.
const MATRIX: [Wire, Kind][] = [
  ...KINDS.map((kind): [Wire, Kind] => ["ws", kind]),
  ...(["tcp", "tcp+channel"] as const).flatMap((wire) =>
    (["memory", "sqlite", "redis"] as const).map((kind): [Wire, Kind] => [wire, kind]),
  ),
];

describe.each(MATRIX)("resumable connections over %s on %s", (wire, kind) => {
  let store: SessionStore;
  let server: Awaited<ReturnType<typeof startLive>>;
  let sessions: Sessions;
  let proxy: CutProxy;
  let url: string;

  beforeAll(async () => {
    store = makeStore(kind);
    server = await startLive(
      store,
      {
        authenticate: (request, _http, auth) => {
          const user = userOf(request, auth);
          return user ? { userId: user, level: 100 } : {};
        },
      },
      undefined,
      wire,
    );
    sessions = server.sessions;
    proxy = await new CutProxy(server.port).start();
    url = server.url(proxy.port);
  }, 30_000);

  afterAll(async () => {
    await proxy?.stop();
    await server?.stop();
  });

  it("a network cut mid-stream, both ways, three times: same id, every message once and in order", async () => {
    const seen = recordConnections(server.live);
    const client = new TestClient(url);
    const { id } = await client.opened();
    const first = await waitUntil(() => seen.find((s) => s.conn.id === id));
    const N = 300;
    // The server streams through whichever connection holds the session now, or into its outbox.
    const serverSends = (async () => {
      for (const n of upTo(N)) {
        await server.live.send(id, { n });
        if (n % 20 === 0) await sleep(5);
      }
    })();
    const clientSends = (async () => {
      for (const n of upTo(N)) {
        client.conn.send({ c: n });
        if (n % 20 === 0) await sleep(5);
      }
    })();
    for (let cut = 0; cut < 3; cut++) {
      await sleep(40);
      proxy.cut();
      await client.opened(cut + 2, 10_000);
    }
    await Promise.all([serverSends, clientSends]);
    await waitUntil(() => client.messages.length >= N, 10_000, "server messages at the client");
    const atServer = () => seen.filter((s) => s.conn.id === id).flatMap((s) => s.messages);
    await waitUntil(() => atServer().length >= N, 10_000, "client messages at the server");
    await sleep(100);
    expect(client.messages).toEqual(upTo(N).map((n) => ({ n })));
    expect(atServer()).toEqual(upTo(N).map((c) => ({ c })));
    expect(client.opens.map((o) => o.id)).toEqual([id, id, id, id]);
    expect(client.opens.slice(1).every((o) => o.resumed)).toBe(true);
    expect(first.conn.resumed).toBe(false);
    client.conn.close();
  }, 60_000);

  it("a half-open connection is closed with replaced when its session resumes in the same process", async () => {
    // The server's own heartbeat would find it after 2 s; the client notices silence first and resumes.
    const seen = recordConnections(server.live);
    const client = new TestClient(url, { heartbeatMs: 150 });
    const { id } = await client.opened();
    const old = await waitUntil(() => seen.find((s) => s.conn.id === id));
    proxy.stall();
    await client.opened(2, 5000);
    await waitUntil(() => old.closed, 2000, "the stale connection to close");
    expect(old.closed).toBe("replaced");
    expect(server.live.connections.get(id)).not.toBe(old.conn);
    // A late write from the replaced holder is refused by its generation and changes nothing.
    old.conn.session.set("late", true);
    await expect(sessions.commit(old.conn.session)).rejects.toMatchObject({ code: "SESSION_ENDED" });
    expect((await store.get(id))?.attributes.late).toBeUndefined();
    client.conn.close();
  }, 20_000);

  it("two concurrent resumes with one credential: exactly one wins", async () => {
    const key = testKey();
    const { socket, id, resume } = await openRaw(url, key);
    socket.close();
    const before = await store.get(id);
    const attempts = await Promise.all(
      [0, 1, 2, 3].map(async () => {
        const raw = new RawSocket(url, { resume });
        const nonce = await raw.nonce();
        const next = testKey();
        raw.send({
          t: "resume",
          id,
          ack: 0,
          key: next.publicKey,
          proofs: [proof(key, nonce, id, 0, next.publicKey)],
        });
        const answer = await Promise.race([raw.frame("resumed"), raw.frame("rejected")]);
        raw.close();
        return { answer: (await raw.frame("resumed", 200)) ?? answer, next };
      }),
    );
    const results = attempts.map((a) =>
      a.answer?.t === "resumed" ? "resumed" : (a.answer?.reason as string),
    );
    expect(results.filter((r) => r === "resumed")).toHaveLength(1);
    expect(results.filter((r) => r === "bad-proof")).toHaveLength(3);
    const after = await store.get(id);
    const winner = attempts.find((a) => a.answer?.t === "resumed")!;
    expect(after?.connection?.key).toBe(winner.next.publicKey);
    expect(after?.connection?.generation).toBe(before!.connection!.generation + 1);
  }, 20_000);

  it("a captured resume frame replayed on a new connection is bad-proof and changes nothing", async () => {
    const key = testKey();
    const { socket, id, resume } = await openRaw(url, key);
    socket.close();
    const first = new RawSocket(url, { resume });
    const nonce = await first.nonce();
    const next = testKey();
    const captured = JSON.stringify({
      t: "resume",
      id,
      ack: 0,
      key: next.publicKey,
      proofs: [proof(key, nonce, id, 0, next.publicKey)],
    });
    // The captured frame never reached its own connection; an attacker plays it on one of their own
    // (on the encrypted channel, one that even holds the channel secret).
    first.close();
    const before = await store.get(id);
    const replay = new RawSocket(url, { resume });
    await replay.nonce();
    replay.send(captured);
    expect(await replay.frame("rejected")).toMatchObject({ reason: "bad-proof" });
    expect((await replay.closed).code).toBe(4004);
    expect(await store.get(id)).toEqual(before);
  });

  // 10,000 on the in-process store over WebSocket; 2,000 elsewhere keeps the run short.
  const ATTEMPTS = kind === "memory" && wire === "ws" ? 10_000 : 2000;
  it(`guessed ids and proofs (${ATTEMPTS} attempts) alter no stored session`, async () => {
    const keys = [testKey(), testKey(), testKey()];
    const opened = await Promise.all(keys.map((key) => openRaw(url, key)));
    for (const o of opened) o.socket.close();
    const ids = opened.map((o) => o.id);
    await sleep(50);
    const before = await Promise.all(ids.map((id) => store.get(id)));
    const answers: string[] = [];
    const attacker = testKey();
    for (let round = 0; round < ATTEMPTS / 100; round++) {
      const batch = Array.from({ length: 100 }, async (_, i) => {
        const raw = new RawSocket(url);
        const nonce = await raw.nonce();
        const pick = (round * 100 + i) % 4;
        const id =
          pick === 3
            ? Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64url")
            : ids[pick]!;
        const junkProof = Buffer.from(crypto.getRandomValues(new Uint8Array(64))).toString("base64url");
        const proofs = i % 2 === 0 ? [junkProof] : [proof(attacker, nonce, id, 0, attacker.publicKey)];
        raw.send({ t: "resume", id, ack: 0, key: attacker.publicKey, proofs });
        const answer = await raw.frame("rejected");
        raw.close();
        answers.push((answer?.reason as string) ?? "none");
      });
      await Promise.all(batch);
    }
    expect(answers).toHaveLength(ATTEMPTS);
    expect(new Set(answers)).toEqual(new Set(["bad-proof", "expired"]));
    expect(await Promise.all(ids.map((id) => store.get(id)))).toEqual(before);
  }, 120_000);

  it("ended by endAllForUser: the live connection closes with revoked and the client stops", async () => {
    const user = `u-${Math.random().toString(36).slice(2)}`;
    const client = new TestClient(server.url(proxy.port, user));
    const { id } = await client.opened();
    expect((await sessions.listForUser(user)).map((s) => [s.id, s.kind])).toEqual([[id, "connection"]]);
    expect(await sessions.endAllForUser(user)).toBe(1);
    await waitUntil(() => client.closed, 3000, "closed");
    expect(client.closed).toEqual({ reason: "revoked" });
    await sleep(300);
    expect(client.opens).toHaveLength(1);
    expect(client.conn.state).toBe("closed");
  });

  it("no token loads a connection session over HTTP", async () => {
    const client = new TestClient(url);
    const { id } = await client.opened();
    expect(await sessions.load(`${id}.${"A".repeat(43)}`)).toBeNull();
    client.conn.close();
  });
});
