import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import pg from "pg";
import type { SessionStore } from "../../src/core/store.js";
import { MemoryStore } from "../../src/stores/memory/index.js";
import { PostgresStore } from "../../src/stores/postgres/index.js";
import { RedisStore } from "../../src/stores/redis/index.js";
import { SqliteStore } from "../../src/stores/sqlite/index.js";
import { freePort } from "../helpers/redis-server.js";
import { REDIS_URL } from "../helpers/services.js";
import { dropStoreTables, POSTGRES_URL, uniqueTable } from "../stores/postgres-support.js";

/** The stores the HTTP matrix runs on. */
export const STORE_KINDS = ["memory", "sqlite", "redis", "postgres"] as const;
export type StoreKind = (typeof STORE_KINDS)[number];

/**
 * Makes fresh real stores of each kind for one test file and cleans up after it: a temp directory for
 * SQLite files, a unique key prefix for Redis.
 */
export class TestStores {
  readonly #dir = mkdtempSync(join(tmpdir(), "stowage-http-"));
  readonly #prefix = `stowage-http:${randomBytes(6).toString("hex")}:`;
  readonly #open: SessionStore[] = [];
  readonly #tables: string[] = [];
  // One pool for every PostgreSQL store of the file: a pool per store would run the server out of connections.
  #pool: pg.Pool | undefined;
  #files = 0;

  /** A working store of this kind. */
  make(kind: StoreKind): SessionStore {
    return this.#track(this.#create(kind));
  }

  /**
   * A store of this kind that fails every call with STORE_UNAVAILABLE: a closed memory or SQLite store,
   * or a RedisStore pointed at a loopback port where nothing listens.
   */
  async broken(kind: StoreKind): Promise<SessionStore> {
    if (kind === "redis") {
      const port = await freePort();
      return this.#track(
        new RedisStore({ url: `redis://127.0.0.1:${port}`, prefix: this.#prefix, timeoutMs: 300 }),
      );
    }
    if (kind === "postgres") {
      const port = await freePort();
      return this.#track(
        new PostgresStore({ connectionString: `postgres://postgres@127.0.0.1:${port}/test`, timeoutMs: 300 }),
      );
    }
    const store = this.#create(kind);
    await store.close();
    return store;
  }

  /** Closes every store and removes what they left behind. */
  async cleanup(): Promise<void> {
    await Promise.allSettled(this.#open.map((store) => store.close()));
    rmSync(this.#dir, { recursive: true, force: true });
    const pool = this.#pool;
    if (pool) {
      try {
        for (const table of this.#tables) await dropStoreTables(pool, table);
      } finally {
        await pool.end();
      }
    }
    const raw = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await raw.connect();
      // A test-only SCAN to remove this run's keys; the store itself never scans.
      let cursor = "0";
      do {
        const [next, keys] = await raw.scan(cursor, "MATCH", `${this.#prefix}*`, "COUNT", 1000);
        if (keys.length > 0) await raw.del(...keys);
        cursor = next;
      } while (cursor !== "0");
    } finally {
      raw.disconnect();
    }
  }

  #create(kind: StoreKind): SessionStore {
    switch (kind) {
      case "memory":
        return new MemoryStore();
      case "sqlite":
        this.#files += 1;
        return new SqliteStore({ path: join(this.#dir, `sessions-${this.#files}.db`) });
      case "redis":
        return new RedisStore({ url: REDIS_URL, prefix: this.#prefix });
      case "postgres": {
        const table = uniqueTable("http");
        this.#tables.push(table);
        this.#pool ??= new pg.Pool({ connectionString: POSTGRES_URL, max: 20 }).setMaxListeners(100);
        return new PostgresStore({ pool: this.#pool, table });
      }
    }
  }

  #track(store: SessionStore): SessionStore {
    this.#open.push(store);
    return store;
  }
}
