import { StowageError } from "../core/errors.js";
import { OptionChecker } from "../core/options.js";
import type { SessionStore } from "../core/store.js";

/** Options `openStore` passes on to the store it opens. */
export interface OpenStoreOptions {
  /** Redis key prefix. @default "stowage:" */
  prefix?: string;
  /** PostgreSQL table name. @default "stowage_sessions" */
  table?: string;
  /** Per-call timeout for networked stores, in ms. @default 2000 */
  timeoutMs?: number;
}

const EXPECTED =
  "expected memory:, sqlite:PATH, redis://host:port, rediss://host:port, " +
  "redis+cluster://host:port,host:port or postgres://user@host:port/db";

/**
 * Opens a store from a URL. Drivers load on demand, so only the one a URL names must be installed.
 *
 * @example
 * const store = await openStore("sqlite:./data/sessions.db");
 */
export async function openStore(url: string, options: OpenStoreOptions = {}): Promise<SessionStore> {
  new OptionChecker("openStore", options, ["prefix", "table", "timeoutMs"]);
  if (typeof url !== "string") throw invalid("the store URL must be a string");
  const colon = url.indexOf(":");
  const scheme = colon > 0 ? url.slice(0, colon).toLowerCase() : "";
  const rest = url.slice(colon + 1);
  const timeout = options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs };
  switch (scheme) {
    case "memory": {
      if (rest !== "" && rest !== "//") throw invalid("memory: takes no address");
      const { MemoryStore } = await import("./memory/index.js");
      return new MemoryStore();
    }
    case "sqlite": {
      const path = rest.startsWith("//") ? rest.slice(2) : rest;
      if (path === "") throw invalid("sqlite: needs a file path, as in sqlite:./data/sessions.db");
      const { SqliteStore } = await import("./sqlite/index.js");
      const store = new SqliteStore({ path });
      // Opened now, so a path that cannot hold a database is said here rather than at the first request.
      store.db;
      return store;
    }
    case "redis":
    case "rediss": {
      if (!rest.startsWith("//") || rest.length <= 2)
        throw invalid(`${scheme}: needs a host, as in ${scheme}://127.0.0.1:6379`);
      const { RedisStore } = await import("./redis/index.js");
      return new RedisStore({ url, ...prefixOf(options), ...timeout });
    }
    case "redis+cluster": {
      const nodes = clusterNodes(rest);
      const { RedisStore } = await import("./redis/index.js");
      return new RedisStore({ cluster: { nodes }, ...prefixOf(options), ...timeout });
    }
    case "postgres":
    case "postgresql": {
      if (!rest.startsWith("//"))
        throw invalid(`${scheme}: needs a host, as in ${scheme}://postgres@127.0.0.1:5432/db`);
      const { PostgresStore } = await import("./postgres/index.js");
      return new PostgresStore({
        connectionString: url,
        ...(options.table === undefined ? {} : { table: options.table }),
        ...timeout,
      });
    }
    default:
      throw invalid(scheme === "" ? "the store URL has no scheme" : `unknown store scheme "${scheme}:"`);
  }
}

function clusterNodes(rest: string): { host: string; port: number }[] {
  if (!rest.startsWith("//"))
    throw invalid("redis+cluster: needs hosts, as in redis+cluster://h1:7000,h2:7001");
  const list = rest.slice(2).split("/")[0] ?? "";
  const nodes = list.split(",").map((entry) => {
    const match = /^([A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$/.exec(entry.trim());
    const port = match ? Number(match[2]) : 0;
    if (!match || port < 1 || port > 65535) throw invalid("redis+cluster: each node must be host:port");
    return { host: match[1]!.replace(/^\[|\]$/g, ""), port };
  });
  return nodes;
}

function prefixOf(options: OpenStoreOptions): { prefix?: string } {
  return options.prefix === undefined ? {} : { prefix: options.prefix };
}

// The URL itself is never echoed: it may hold a password.
function invalid(what: string): StowageError {
  return new StowageError("CONFIG_INVALID", `store URL: ${what}; ${EXPECTED}`);
}
