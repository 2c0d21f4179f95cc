import { randomBytes } from "node:crypto";
import { RedisStore as ConnectRedisStore } from "connect-redis";
import { Redis } from "ioredis";
import { createClient } from "redis";
import { createSessions, type Session } from "stowage";
import { RedisStore } from "stowage/redis";
import { dropPrefix, expressSessionData, expressSessionId, rate } from "./common.js";
import { oneKbAttributes } from "./fixtures.js";
import { inFlight, measure } from "./micro.js";
import { type GroupReport, ratioRow } from "./report.js";

const URL = process.env.STOWAGE_BENCH_REDIS ?? "redis://127.0.0.1:6379";
/** Operations in flight at once, on every side. */
const CONCURRENCY = 50;
/** Operations per timed call (each of the 50 workers does 20 in a row). */
const OPS = 1000;
const IDLE_MS = 30 * 60_000;

/** Deletes every key under a prefix (bench keys only; never on a hot path). */
/** Group "redis" (issue Distributed stores): RedisStore against raw ioredis and connect-redis. */
export async function run(): Promise<GroupReport> {
  const run = randomBytes(4).toString("hex");
  const prefix = `stowage-bench-${run}:`;
  const peerPrefix = `sess-bench-${run}:`;
  const ioredis = new Redis(URL, { lazyConnect: true });
  await ioredis.connect();
  const store = new RedisStore({ url: URL, prefix });
  // The raw peer runs on the store's own ioredis client: same connection, same options.
  const client = store.client;
  const sessions = createSessions({ store });
  const nodeRedis = createClient({ url: URL });
  nodeRedis.on("error", () => undefined);
  await nodeRedis.connect();
  const peer = new ConnectRedisStore({ client: nodeRedis, prefix: peerPrefix });
  try {
    const fixture = oneKbAttributes();
    const tokens: string[] = [];
    const keys: string[] = [];
    const ids: string[] = [];
    for (let i = 0; i < CONCURRENCY; i++) {
      const s = sessions.create({ attributes: fixture });
      await s.save();
      tokens.push(s.token);
      ids.push(s.id);
      keys.push(`${prefix}{${s.id}}`);
    }
    const loaded = (await Promise.all(tokens.map((t) => sessions.load(t)))) as Session[];
    const sids = Array.from({ length: CONCURRENCY }, expressSessionId);
    const peerData = sids.map(() => expressSessionData(oneKbAttributes()));
    await Promise.all(sids.map((sid, i) => peer.set(sid, peerData[i]!)));
    let counter = 0;

    const figures = await measure(
      [
        { name: "get", batch: OPS, fn: inFlight(CONCURRENCY, OPS, (w) => store.get(ids[w]!)) },
        { name: "raw-hgetall", batch: OPS, fn: inFlight(CONCURRENCY, OPS, (w) => client.hgetall(keys[w]!)) },
        { name: "load", batch: OPS, fn: inFlight(CONCURRENCY, OPS, (w) => sessions.load(tokens[w])) },
        { name: "cr-get", batch: OPS, fn: inFlight(CONCURRENCY, OPS, (w) => peer.get(sids[w]!)) },
        {
          name: "commit-store",
          batch: OPS,
          fn: inFlight(CONCURRENCY, OPS, (w) =>
            store.commit(ids[w]!, {
              set: { counter: ++counter },
              meta: { idleExpiresAt: Date.now() + IDLE_MS },
            }),
          ),
        },
        {
          name: "commit-manager",
          batch: OPS,
          fn: inFlight(CONCURRENCY, OPS, (w) => {
            const s = loaded[w]!;
            s.set("counter", ++counter);
            return sessions.commit(s);
          }),
        },
        {
          name: "cr-set",
          batch: OPS,
          fn: inFlight(CONCURRENCY, OPS, (w) => {
            const data = peerData[w]!;
            data.counter = ++counter;
            return peer.set(sids[w]!, data);
          }),
        },
      ],
      { rounds: 12 },
    );
    const r = (name: string, label: string) => rate(label, figures, name);
    return {
      group: "redis",
      title: 'Redis (issue "Distributed stores"): RedisStore',
      rows: [
        ratioRow("RedisStore get", r("get", "store.get(id)"), r("raw-hgetall", "ioredis HGETALL"), 0.7),
        ratioRow(
          "RedisStore get, through the manager",
          r("load", "sessions.load(token)"),
          r("raw-hgetall", "ioredis HGETALL"),
        ),
        ratioRow(
          "RedisStore get vs connect-redis get",
          r("get", "store.get(id)"),
          r("cr-get", "connect-redis get"),
        ),
        ratioRow(
          "RedisStore commit of one changed key",
          r("commit-store", "store.commit(id, delta)"),
          r("cr-set", "connect-redis set"),
          1.5,
        ),
        ratioRow(
          "RedisStore commit of one changed key, through the manager",
          r("commit-manager", "set + sessions.commit"),
          r("cr-set", "connect-redis set"),
          1.5,
        ),
      ],
      notes: [
        `${CONCURRENCY} operations in flight on every side (a closed loop: each of ${CONCURRENCY} workers` +
          ` issues its next call when the last one settles, on its own session); ${OPS} operations per timed` +
          " call; each figure is the median of 12 rounds of 300 ms (the first after 1 s of warm-up), task" +
          " order reversed every other round. Redis runs on the same machine (loopback), so its CPU time" +
          " competes with the client's on the 2 cores.",
        "The raw HGETALL runs on the store's own ioredis client (one connection, the options RedisStore" +
          " gives it). The store adds decoding the hash into a record (a JSON.parse per attribute), the" +
          " expiry check and the call's deadline; it also saves work the raw calls do not: the commands" +
          " its calls issue in one tick go out in writes of up to 32 (the socket is corked until the" +
          " turn's check phase), where ioredis alone writes each command with its own syscall." +
          " connect-redis v9 accepts only a node-redis (`redis` package) client, so the peer runs on" +
          " node-redis: the comparison includes the client library. A session is one hash in RedisStore" +
          " (commit = one EVALSHA that checks the version, HSETs the changed fields and the new version," +
          " and moves the TTL only when an expiry changed; the usual one runs the lean COMMIT_PLAIN) and one JSON string in connect-redis (set = SET" +
          " of the whole session with EX).",
      ],
    };
  } finally {
    await dropPrefix(ioredis, prefix).catch(() => undefined);
    await dropPrefix(ioredis, peerPrefix).catch(() => undefined);
    await sessions.close().catch(() => undefined);
    await nodeRedis.quit().catch(() => undefined);
    ioredis.disconnect();
  }
}
