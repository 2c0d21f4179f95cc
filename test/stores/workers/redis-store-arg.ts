import { RedisStore } from "../../../src/stores/redis/index.js";

/** Opens a RedisStore from worker arguments: `standalone <url>` or `cluster <host:port,host:port,...>`. */
export function storeFromArgs(
  mode: string | undefined,
  target: string | undefined,
  prefix: string,
): RedisStore {
  if (mode === "standalone" && target) return new RedisStore({ url: target, prefix });
  if (mode === "cluster" && target) {
    const nodes = target.split(",").map((entry) => {
      const [host, port] = entry.split(":");
      return { host: host ?? "127.0.0.1", port: Number(port) };
    });
    return new RedisStore({ cluster: { nodes }, prefix });
  }
  throw new Error("usage: standalone <url> | cluster <host:port,...>");
}
