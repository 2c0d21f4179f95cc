import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { expectCode, makeRecord } from "../../src/conformance/helpers.js";
import { newId } from "../../src/core/tokens.js";
import { openStore } from "../../src/stores/open.js";
import { startRedisCluster } from "../helpers/redis-cluster.js";
import { REDIS_URL } from "../helpers/services.js";
import { dropStoreTables, POSTGRES_URL, uniqueTable } from "./postgres-support.js";

const dir = mkdtempSync(join(tmpdir(), "stowage-open-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Opens a URL and proves the store it gives really works: a record goes in and comes back. */
async function roundTrip(url: string, expectedName: string, options = {}): Promise<void> {
  const store = await openStore(url, options);
  try {
    expect(store.name).toBe(expectedName);
    const record = makeRecord({ attributes: { url: expectedName } });
    await store.insert(record);
    expect((await store.get(record.id))?.attributes).toEqual({ url: expectedName });
    await store.delete(record.id);
  } finally {
    await store.close();
  }
}

/** Every place an error could carry text: message, stack, cause chain, own properties, util.inspect. */
function everything(error: unknown): string {
  const parts = [inspect(error, { depth: 10, showHidden: true })];
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    parts.push(
      e.message,
      e.stack ?? "",
      JSON.stringify(Object.getOwnPropertyNames(e).map((k) => String((e as never)[k]))),
    );
  }
  return parts.join("\n");
}

describe("malformed store URLs", () => {
  const MALFORMED = [
    "redis://u:hunter2@127.0.0.1:notaport",
    "redis://u:hunter2@127.0.0.1:99999",
    "rediss://u:hunter2@[::1",
    "redis://u:hunter2@127.0.0.1:6379/notadb",
    "redis+cluster://u:hunter2@127.0.0.1:notaport",
    "postgres://u:hunter2@127.0.0.1:notaport/db",
    "postgresql://u:hunter2@127.0.0.1:70000/db",
    "postgres://u:hunter2@[::1/db",
    "memory://u:hunter2@x",
    "nosuch://u:hunter2@x",
    "hunter2",
  ];
  for (const url of MALFORMED) {
    it(`${url.replace("hunter2", "…")} is CONFIG_INVALID at openStore and the password is nowhere in the error`, async () => {
      const error = await expectCode(openStore(url), "CONFIG_INVALID");
      expect(everything(error)).not.toContain("hunter2");
    });
  }

  it("unknown openStore options are CONFIG_INVALID", async () => {
    await expectCode(openStore("memory:", { prefx: "x" } as never), "CONFIG_INVALID");
  });

  it("a SQLite path that cannot be created fails at once with the reason", async () => {
    const started = Date.now();
    const error = await expectCode(openStore("sqlite:/proc/nope/x.db"), "STORE_UNAVAILABLE");
    expect(error.message).toContain("/proc/nope");
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

describe("openStore", () => {
  it("opens memory:", () => roundTrip("memory:", "memory"));
  it("opens sqlite:PATH", () => roundTrip(`sqlite:${join(dir, "a.db")}`, "sqlite"));
  it("opens redis://", () => roundTrip(REDIS_URL, "redis", { prefix: `open-${newId()}:` }));
  it("opens postgres:// and postgresql://", async () => {
    const table = uniqueTable("open");
    try {
      await roundTrip(POSTGRES_URL, "postgres", { table });
      await roundTrip(POSTGRES_URL.replace(/^postgres:/, "postgresql:"), "postgres", { table });
    } finally {
      const { default: pg } = await import("pg");
      const pool = new pg.Pool({ connectionString: POSTGRES_URL });
      await dropStoreTables(pool, table);
      await pool.end();
    }
  });
  it("opens redis+cluster://h:p,h:p", async () => {
    const cluster = await startRedisCluster(3);
    try {
      await roundTrip(`redis+cluster://${cluster.seeds}`, "redis", { prefix: `open-${newId()}:` });
    } finally {
      await cluster.stop();
    }
  }, 120_000);

  it.each([
    ["", /no scheme/],
    ["sessions.db", /no scheme/],
    ["mysql://root@localhost/db", /unknown store scheme "mysql:"/],
    ["memory:somewhere", /memory: takes no address/],
    ["sqlite:", /sqlite: needs a file path/],
    ["redis:", /redis: needs a host/],
    ["redis+cluster://", /each node must be host:port/],
    ["redis+cluster://h1:7000,h2", /each node must be host:port/],
    ["redis+cluster://h1:99999", /each node must be host:port/],
    ["postgres:db", /postgres: needs a host/],
  ])("refuses %j with CONFIG_INVALID saying what was expected", async (url, reason) => {
    const error = await expectCode(openStore(url), "CONFIG_INVALID");
    expect(error.message).toMatch(reason);
    expect(error.message).toMatch(/expected memory:, sqlite:PATH, redis:\/\/host:port/);
  });

  it("never echoes the URL, which may hold a password", async () => {
    const error = await expectCode(openStore("mongodb://admin:hunter2@db/x"), "CONFIG_INVALID");
    expect(error.message).not.toContain("hunter2");
  });
});
