import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { Cluster, Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { idsOf } from "../../src/conformance/helpers.js";
import { makeRecord, newUserId, runStoreConformance, waitFor } from "../../src/conformance/index.js";
import type { StoreEvent } from "../../src/core/store.js";
import { RedisStore } from "../../src/stores/redis/index.js";
import { runTs } from "../helpers/processes.js";
import { type RedisClusterHandle, startRedisCluster } from "../helpers/redis-cluster.js";
import { vitest } from "../helpers/runner.js";

const prefix = `stowage-cluster:${randomBytes(6).toString("hex")}:`;
let cluster: RedisClusterHandle | undefined;
const stores: RedisStore[] = [];
const direct = new Map<number, Redis>();

function running(): RedisClusterHandle {
  if (!cluster) throw new Error("cluster not started");
  return cluster;
}

function open(): RedisStore {
  const store = new RedisStore({ cluster: { nodes: running().nodes }, prefix });
  stores.push(store);
  return store;
}

/** A plain (non-cluster) connection to one node, to see what that node physically holds. */
function node(port: number): Redis {
  let client = direct.get(port);
  if (!client) {
    client = new Redis(port, "127.0.0.1");
    direct.set(port, client);
  }
  return client;
}

beforeAll(async () => {
  cluster = await startRedisCluster(3);
}, 60_000);

afterAll(async () => {
  await Promise.all(stores.map((store) => store.close()));
  await Promise.all([...direct.values()].map((client) => client.quit()));
  await cluster?.stop();
});

runStoreConformance(vitest, "redis-cluster", () => open());

/** The port of the master that owns `key`'s slot. */
async function ownerOf(key: string): Promise<number> {
  const first = node(running().nodes[0]!.port);
  const slot = await first.cluster("KEYSLOT", key);
  const ranges = await first.cluster("SLOTS");
  const range = ranges.find(([from, to]) => slot >= from && slot <= to);
  if (!range) throw new Error(`slot ${slot} unassigned`);
  const owner = range[2];
  if (!owner) throw new Error(`slot ${slot} has no master`);
  return owner[1];
}

const worker = fileURLToPath(new URL("./workers/redis-update-worker.ts", import.meta.url));
const publisher = fileURLToPath(new URL("./workers/redis-publish-worker.ts", import.meta.url));

describe("redis cluster specifics", () => {
  it("spreads sessions over all three masters, each hash whole on its own node, and all works", async () => {
    const store = open();
    const userId = newUserId();
    const records = Array.from({ length: 30 }, (_, i) => makeRecord({ userId, attributes: { i } }));
    for (const record of records) await store.insert(record);
    const owners = await Promise.all(records.map((r) => ownerOf(`${prefix}{${r.id}}`)));
    expect(new Set(owners).size).toBe(3);
    for (const [i, record] of records.entries()) {
      // The hash, its lock and fence keys share the slot: the node that owns the hash holds all fields.
      expect(await ownerOf(`${prefix}{${record.id}}:lock`)).toBe(owners[i]);
      const hash = await node(owners[i]!).hgetall(`${prefix}{${record.id}}`);
      expect(hash["a:i"]).toBe(String(i));
    }
    expect(idsOf(await store.listByUser(userId))).toEqual(idsOf(records));

    // A rename whose old and new ids live on different nodes.
    const old = records[0]!;
    let next = makeRecord({ userId });
    while ((await ownerOf(`${prefix}{${next.id}}`)) === owners[0]) next = makeRecord({ userId });
    expect(await store.rename(old.id, next, { graceMs: 60_000 })).toBe(2);
    const viaOld = await store.get(old.id);
    expect(viaOld?.id).toBe(next.id);
    expect(viaOld?.via).toMatchObject({ from: old.id, verifier: old.verifier });
    expect(await store.commit(next.id, { set: { moved: true } }, { ifVersion: 2 })).toBe(3);

    const lock = await store.lock(records[1]!.id, 5000);
    expect(lock).not.toBeNull();
    await lock!.release();

    const removed = await store.deleteByUser(userId, { exceptId: next.id });
    expect(removed.sort()).toEqual(idsOf(records.slice(1)));
    expect(idsOf(await store.listByUser(userId))).toEqual([next.id]);
  });

  it("events go over sharded pub/sub: a sharded subscriber gets them, a plain SUBSCRIBE on any node does not", async () => {
    const store = open();
    const channel = `${prefix}events`;
    const sharded: string[] = [];
    const plain: string[] = [];
    const listener = new Cluster(running().nodes, { shardedSubscribers: true });
    const nodes = running().nodes.map(({ port }) => new Redis(port, "127.0.0.1"));
    try {
      await listener.ssubscribe(channel);
      listener.on("smessage", (_c: string, m: string) => sharded.push(m));
      for (const n of nodes) {
        await n.subscribe(channel);
        n.on("message", (_c: string, m: string) => plain.push(m));
      }
      const event: StoreEvent = { type: "ended", id: makeRecord().id, at: Date.now() };
      await store.publish(event);
      await waitFor(() => sharded.some((m) => m.includes(event.id)), 2000, "the sharded message");
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(sharded.filter((m) => m.includes(event.id))).toHaveLength(1);
      expect(plain.some((m) => m.includes(event.id))).toBe(false);
    } finally {
      listener.disconnect();
      for (const n of nodes) n.disconnect();
    }
  });

  it("an event published in another process reaches a subscriber here within 1 s", async () => {
    const store = open();
    const received: { event: StoreEvent; at: number }[] = [];
    const unsubscribe = await store.subscribe((event) => received.push({ event, at: Date.now() }));
    try {
      const id = makeRecord().id;
      const out = await runTs(publisher, ["cluster", running().seeds, prefix, id]);
      const { publishedAt } = JSON.parse(out.trim().split("\n").pop()!) as { publishedAt: number };
      const hit = (await waitFor(
        () => received.find((r) => r.event.id === id),
        5000,
        "cross-process event",
      ))!;
      expect(hit.event).toMatchObject({ type: "ended", id });
      expect(hit.at - publishedAt).toBeLessThan(1000);
    } finally {
      await unsubscribe();
    }
  });

  it("4 processes x 100 parallel read-modify-write updates of one key end at exactly 400", {
    timeout: 120_000,
  }, async () => {
    const store = open();
    const record = makeRecord({ attributes: { n: 0 } });
    await store.insert(record);
    const started = Date.now();
    const outputs = await Promise.all(
      Array.from({ length: 4 }, () => runTs(worker, ["cluster", running().seeds, prefix, record.id, "100"])),
    );
    const elapsed = Date.now() - started;
    const got = await store.get(record.id);
    expect(got?.attributes.n).toBe(400);
    expect(got?.version).toBe(401);
    const attempts = outputs
      .map((o) => (JSON.parse(o.trim().split("\n").pop()!) as { attempts: number }).attempts)
      .reduce((a, b) => a + b, 0);
    console.log(`redis cluster: 400 contended updates in ${elapsed} ms, ${attempts} attempts`);
  });
});
