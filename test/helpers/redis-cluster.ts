import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  freePort,
  type RedisProcess,
  redisCli,
  redisCliWithin,
  startRedisServer,
  stopRedisServer,
  until,
} from "./redis-server.js";

/** A Redis Cluster of test-owned processes on loopback. */
export interface RedisClusterHandle {
  /** The master nodes, as ioredis Cluster wants its seeds. */
  readonly nodes: { host: string; port: number }[];
  /** `host:port,host:port,...` for worker arguments and `redis+cluster://` URLs. */
  readonly seeds: string;
  /** Stops every node and removes the temp dir. */
  stop(): Promise<void>;
}

/**
 * Starts `masters` redis-server processes with cluster mode on free loopback ports (the bus port
 * P + 10000 checked too), joins them with `redis-cli --cluster create`, and waits until every node reports
 * `cluster_state:ok` and knows all the others.
 */
export async function startRedisCluster(masters = 3): Promise<RedisClusterHandle> {
  const dir = mkdtempSync(join(tmpdir(), "stowage-redis-cluster-"));
  const servers: RedisProcess[] = [];
  const stop = async () => {
    await Promise.all(servers.map((server) => stopRedisServer(server)));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const ports: number[] = [];
    for (let i = 0; i < masters; i++) {
      ports.push(await freePort({ clusterBus: true, avoid: ports.flatMap((p) => [p, p + 10_000]) }));
    }
    for (const port of ports) {
      servers.push(
        await startRedisServer(port, [
          "--cluster-enabled",
          "yes",
          "--cluster-config-file",
          join(dir, `nodes-${port}.conf`),
          "--cluster-node-timeout",
          "5000",
          "--dir",
          dir,
        ]),
      );
    }
    // The join polls the nodes once a second until they agree: on a busy 2-core machine (the whole
    // suite running) that has taken more than redisCli's 10 s.
    await redisCliWithin(
      60_000,
      ports[0]!,
      "--cluster",
      "create",
      ...ports.map((port) => `127.0.0.1:${port}`),
      "--cluster-replicas",
      "0",
      "--cluster-yes",
    );
    for (const port of ports) {
      await until(
        async () => {
          const info = await redisCli(port, "cluster", "info");
          return info.includes("cluster_state:ok") && info.includes(`cluster_known_nodes:${masters}`);
        },
        30_000,
        `cluster_state:ok on ${port}`,
      );
    }
    const nodes = ports.map((port) => ({ host: "127.0.0.1", port }));
    return { nodes, seeds: nodes.map((n) => `${n.host}:${n.port}`).join(","), stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
