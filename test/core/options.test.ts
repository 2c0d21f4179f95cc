import { describe, expect, it } from "vitest";
import { StowageError } from "../../src/core/errors.js";
import { sessionMiddleware as expressSessions } from "../../src/http/express.js";
import { sessionPlugin } from "../../src/http/fastify.js";
import { sessionMiddleware as honoSessions } from "../../src/http/hono.js";
import { handleFetch, withSessions } from "../../src/http/index.js";
import { createSessions, MemoryStore } from "../../src/index.js";
import { PostgresStore } from "../../src/stores/postgres/index.js";
import { RedisStore } from "../../src/stores/redis/index.js";
import { SqliteStore } from "../../src/stores/sqlite/index.js";

/** Calls `make` as plain JavaScript would (no type check) and returns the CONFIG_INVALID it throws. */
function refused(make: () => unknown): StowageError {
  let caught: unknown;
  try {
    make();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(StowageError);
  expect((caught as StowageError).code).toBe("CONFIG_INVALID");
  return caught as StowageError;
}

const loose = (value: object) => value as never;

describe("unknown, misspelt or impossible options are CONFIG_INVALID naming the option", () => {
  it("createSessions", () => {
    expect(refused(() => createSessions(loose({ cookie: { maxAge: 1 } }))).message).toContain('"cookie"');
    expect(refused(() => createSessions(loose({ idleTimout: 5 }))).message).toContain('"idleTimout"');
    expect(refused(() => createSessions({ ttl: 60_000, idleTimeout: 120_000 })).message).toMatch(
      /idleTimeout.*ttl/,
    );
    expect(refused(() => createSessions({ idleTimeout: 1000, touchAfter: 1000 })).message).toContain(
      "touchAfter",
    );
    expect(refused(() => createSessions({ ttl: -1 })).message).toMatch(/ttl must be .*milliseconds/);
    const bytes = refused(() => createSessions({ maxAttributesBytes: 0 })).message;
    expect(bytes).toMatch(/maxAttributesBytes .*bytes/);
    expect(bytes).not.toContain("milliseconds");
    expect(refused(() => createSessions(loose({ store: {} }))).message).toContain("store");
    expect(refused(() => createSessions(loose({ clock: 5 }))).message).toContain("clock");
    expect(refused(() => createSessions(loose({ keys: "secret" }))).message).toContain("keys");
  });

  it("every HTTP entry point", () => {
    const sessions = createSessions();
    const handler = () => new Response("ok");
    expect(refused(() => handleFetch(sessions, handler, loose({ maxAge: 1000 }))).message).toContain(
      '"maxAge"',
    );
    expect(refused(() => withSessions(sessions, () => {}, loose({ cookie: {} }))).message).toContain(
      '"cookie"',
    );
    expect(refused(() => expressSessions(sessions, loose({ secret: "x" }))).message).toContain('"secret"');
    expect(refused(() => sessionPlugin(sessions, loose({ onError: () => {} }))).message).toContain(
      '"onError"',
    );
    expect(refused(() => honoSessions(sessions, loose({ rolling: true }))).message).toContain('"rolling"');
    expect(refused(() => honoSessions(sessions, { domain: "not a host" })).message).toContain("domain");
    expect(refused(() => handleFetch(sessions, handler, loose({ trustProxy: "yes" }))).message).toContain(
      "trustProxy",
    );
    expect(refused(() => handleFetch(sessions, handler, loose({ sameSite: "Lax" }))).message).toContain(
      "sameSite",
    );
    expect(refused(() => handleFetch(sessions, handler, loose({ persistent: 1 }))).message).toContain(
      "persistent",
    );
  });

  it("every store", () => {
    expect(refused(() => new MemoryStore(loose({ maxEntry: 5 }))).message).toContain('"maxEntry"');
    expect(refused(() => new MemoryStore({ maxEntries: 1.5 })).message).toContain("maxEntries");
    expect(refused(() => new SqliteStore(loose({ path: ":memory:", busyTimeout: 5 }))).message).toContain(
      '"busyTimeout"',
    );
    expect(refused(() => new SqliteStore(loose({}))).message).toContain("path");
    expect(refused(() => new RedisStore(loose({ urll: "redis://x" }))).message).toContain('"urll"');
    expect(refused(() => new RedisStore({ timeoutMs: 0 })).message).toMatch(/timeoutMs .*milliseconds/);
    expect(refused(() => new PostgresStore(loose({ tabel: "x" }))).message).toContain('"tabel"');
    expect(refused(() => new PostgresStore({ sweepBatch: 0.5 })).message).toContain("sweepBatch");
  });

  it("acquire", async () => {
    const sessions = createSessions();
    const session = sessions.create();
    await expect(session.acquire(loose({ lease: 5 }))).rejects.toMatchObject({ code: "CONFIG_INVALID" });
    await expect(session.acquire({ leaseMs: -5 })).rejects.toMatchObject({ code: "CONFIG_INVALID" });
  });

  it("a message echoes numbers, never other values (an option may hold a secret)", () => {
    const message = refused(() => createSessions(loose({ ttl: "hunter2" }))).message;
    expect(message).not.toContain("hunter2");
    expect(message).toContain("a string");
  });
});
