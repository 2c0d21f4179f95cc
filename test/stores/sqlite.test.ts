import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import {
  expectCode,
  makeRecord,
  newUserId,
  runStoreConformance,
  sleep,
  waitFor,
} from "../../src/conformance/index.js";
import { StowageError } from "../../src/core/errors.js";
import type { StoreEvent } from "../../src/core/store.js";
import { issueToken } from "../../src/core/tokens.js";
import { SqliteStore } from "../../src/stores/sqlite/index.js";
import { SCHEMA_VERSION } from "../../src/stores/sqlite/migrations.js";
import { vitest } from "../helpers/runner.js";

const dir = mkdtempSync(join(tmpdir(), "stowage-sqlite-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
/** A fresh database path inside this run's temp dir. */
function freshPath(): string {
  files += 1;
  return join(dir, `db-${files}.sqlite`);
}

const HERE = fileURLToPath(new URL(".", import.meta.url));
const WORKERS = join(HERE, "workers");

interface Worker {
  child: ChildProcessWithoutNullStreams;
  /** stdout so far. */
  output: () => string;
  /** Resolves with the exit code (or signal) once the child is gone. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
}

function startWorker(file: string, args: string[]): Worker {
  const child = spawn(process.execPath, ["--import", "tsx", join(WORKERS, file), ...args], {
    cwd: join(HERE, "../.."),
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>(
    (resolve) => child.on("close", (code, signal) => resolve({ code, signal, stderr })),
  );
  return { child, output: () => stdout, exited };
}

async function expectCleanExit(worker: Worker): Promise<string> {
  const { code, stderr } = await worker.exited;
  expect(stderr).toBe("");
  expect(code).toBe(0);
  return worker.output();
}

function countRows(path: string, table: string): number {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare(`SELECT count(*) FROM ${table}`).pluck().get() as number;
  } finally {
    db.close();
  }
}

runStoreConformance(vitest, "sqlite", () => new SqliteStore({ path: freshPath() }));

describe("sqlite store", () => {
  describe("schema and migrations", () => {
    it("creates a WAL file at synchronous=FULL and records the schema version", async () => {
      const store = new SqliteStore({ path: freshPath() });
      try {
        expect(store.db.pragma("journal_mode", { simple: true })).toBe("wal");
        expect(store.db.pragma("synchronous", { simple: true })).toBe(2);
        expect(store.db.pragma("busy_timeout", { simple: true })).toBe(5000);
        const versions = store.db
          .prepare("SELECT version FROM stowage_migrations ORDER BY version")
          .pluck()
          .all();
        expect(versions).toEqual(Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1));
      } finally {
        await store.close();
      }
    });

    it("a file at schema version 1 (before outboxes) migrates to 2 and keeps its sessions", async () => {
      const path = freshPath();
      const first = new SqliteStore({ path });
      const record = makeRecord({ attributes: { kept: true } });
      await first.insert(record);
      // What a file written by stowage before the outbox looks like.
      first.db.exec(`DROP TRIGGER stowage_outbox_follows_session; DROP TABLE stowage_outbox;
        DROP TABLE stowage_outbox_heads; DELETE FROM stowage_migrations WHERE version = 2;`);
      await first.close();
      const second = new SqliteStore({ path });
      try {
        expect(await second.get(record.id)).toEqual(record);
        expect(
          await second.outboxAppend(record.id, ["after upgrade"], { maxMessages: 10, maxBytes: 1000 }),
        ).toBe(1);
        await second.delete(record.id);
        expect(second.db.prepare("SELECT count(*) FROM stowage_outbox").pluck().get()).toBe(0);
        expect(
          second.db.prepare("SELECT version FROM stowage_migrations ORDER BY version").pluck().all(),
        ).toEqual([1, 2]);
      } finally {
        await second.close();
      }
    });

    it("reopens an existing file (one after the other and two at once) without migrating again", async () => {
      const path = freshPath();
      const first = new SqliteStore({ path });
      const record = makeRecord({ attributes: { kept: true } });
      await first.insert(record);
      const appliedAt = first.db.prepare("SELECT applied_at FROM stowage_migrations").pluck().all();
      await first.close();

      const second = new SqliteStore({ path });
      const third = new SqliteStore({ path });
      try {
        expect(await second.get(record.id)).toEqual(record);
        expect(await third.get(record.id)).toEqual(record);
        expect(third.db.prepare("SELECT applied_at FROM stowage_migrations").pluck().all()).toEqual(
          appliedAt,
        );
      } finally {
        await second.close();
        await third.close();
      }
    });

    it("eight processes opening the same new file at once all succeed; each step is applied once", async () => {
      const path = freshPath();
      const startAt = String(Date.now() + 1500);
      const workers = Array.from({ length: 8 }, () => startWorker("sqlite-open-worker.ts", [path, startAt]));
      const ids = (await Promise.all(workers.map(expectCleanExit))).map((out) => out.trim());
      const store = new SqliteStore({ path });
      try {
        for (const id of ids) expect((await store.get(id))?.id).toBe(id);
        const rows = store.db
          .prepare("SELECT version FROM stowage_migrations ORDER BY version")
          .pluck()
          .all();
        expect(rows).toEqual(Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1));
      } finally {
        await store.close();
      }
    }, 60_000);

    it("refuses a file written by a newer schema with CONFIG_INVALID", async () => {
      const path = freshPath();
      const store = new SqliteStore({ path });
      store.db
        .prepare("INSERT INTO stowage_migrations (version, applied_at) VALUES (?, 0)")
        .run(SCHEMA_VERSION + 1);
      await store.close();
      const newer = new SqliteStore({ path });
      await expectCode(newer.get(makeRecord().id), "CONFIG_INVALID");
      await newer.close();
    });

    it("rejects bad options with CONFIG_INVALID", () => {
      const bad = [
        { path: "" },
        { path: freshPath(), sweepBatch: 0 },
        { path: freshPath(), busyTimeoutMs: -1 },
      ];
      for (const options of bad) {
        expect(() => new SqliteStore(options)).toThrow(StowageError);
      }
    });
  });

  it("never writes a token's secret to the db or WAL file (but does write the id)", async () => {
    const path = freshPath();
    const store = new SqliteStore({ path });
    const tokens = Array.from({ length: 5 }, () => issueToken());
    const userId = newUserId();
    try {
      for (const token of tokens.slice(0, 4)) {
        await store.insert(makeRecord({ id: token.id, verifier: token.verifier, userId }));
        await store.commit(token.id, { set: { n: 1 }, meta: { language: "en" } });
      }
      const renamed = tokens[4]!;
      await store.rename(tokens[3]!.id, makeRecord({ id: renamed.id, verifier: renamed.verifier }), {
        graceMs: 60_000,
      });
      await store.consume(tokens[2]!.id, () => true);
      const dbBefore = readFileSync(path);
      const walBefore = readFileSync(`${path}-wal`);
      store.db.pragma("wal_checkpoint(FULL)");
      const files = [dbBefore, walBefore, readFileSync(path), readFileSync(`${path}-wal`)];
      // The reading works: ids and verifiers are there.
      expect(files[2]!.includes(tokens[0]!.id)).toBe(true);
      expect(files[2]!.includes(tokens[0]!.verifier)).toBe(true);
      expect(files[1]!.includes(renamed.id)).toBe(true);
      for (const token of tokens) {
        const secret = token.token.slice(token.id.length + 1);
        for (const bytes of files) {
          expect(bytes.includes(secret)).toBe(false);
          expect(bytes.includes(Buffer.from(secret, "base64url"))).toBe(false);
          expect(bytes.includes(token.token)).toBe(false);
        }
      }
    } finally {
      await store.close();
    }
  });

  it("durable: every write acknowledged before a SIGKILL is there after reopening", async () => {
    const path = freshPath();
    const record = makeRecord();
    const setup = new SqliteStore({ path });
    await setup.insert(record);
    await setup.close();

    const worker = startWorker("sqlite-commit-worker.ts", [path, record.id]);
    // Only lines the worker finished (newline-terminated) count as acknowledged.
    const complete = () => worker.output().split("\n").slice(0, -1);
    await waitFor(() => complete().length > 300, 30_000, "300 acknowledged commits");
    worker.child.kill("SIGKILL");
    const { signal } = await worker.exited;
    expect(signal).toBe("SIGKILL");

    const acked = complete().map((line) => line.split(" ").map(Number) as [number, number]);
    expect(acked.length).toBeGreaterThan(300);
    const store = new SqliteStore({ path });
    try {
      const stored = await store.get(record.id);
      if (!stored) throw new Error("record lost");
      const [lastVersion] = acked[acked.length - 1]!;
      expect(stored.version).toBeGreaterThanOrEqual(lastVersion);
      for (const [version, i] of acked) {
        expect(version).toBe(i + 2);
        expect(stored.attributes[`k${i}`]).toBe(i);
      }
    } finally {
      await store.close();
    }
  }, 60_000);

  it("4 processes × 100 parallel read-modify-write updates of one key end at exactly 400", async () => {
    const path = freshPath();
    const record = makeRecord({ attributes: { count: 0 } });
    const setup = new SqliteStore({ path });
    await setup.insert(record);
    await setup.close();

    const startAt = String(Date.now() + 2000);
    const workers = Array.from({ length: 4 }, () =>
      startWorker("sqlite-update-worker.ts", [path, record.id, "100", startAt]),
    );
    const summaries = (await Promise.all(workers.map(expectCleanExit))).map(
      (out) => JSON.parse(out) as { updates: number; attempts: number },
    );
    expect(summaries.map((s) => s.updates)).toEqual([100, 100, 100, 100]);
    const store = new SqliteStore({ path });
    try {
      const stored = await store.get(record.id);
      expect(stored?.attributes.count).toBe(400);
      expect(stored?.version).toBe(401);
    } finally {
      await store.close();
    }
  }, 120_000);

  describe("failures are StowageErrors", () => {
    it("malformed stored JSON gives STORE_UNAVAILABLE, never a crash or a wrong record", async () => {
      const store = new SqliteStore({ path: freshPath() });
      try {
        const userId = newUserId();
        const broken = [
          ["attributes", "{not json"],
          ["attributes", "[1,2]"],
          ["attributes", "null"],
          ["channel", '{"algorithm":1}'],
          ["connection", "{"],
        ] as const;
        for (const [column, text] of broken) {
          const record = makeRecord({ userId, attributes: { intact: true } });
          await store.insert(record);
          store.db.prepare(`UPDATE stowage_sessions SET ${column} = ? WHERE id = ?`).run(text, record.id);
          await expectCode(store.get(record.id), "STORE_UNAVAILABLE");
          await expectCode(store.listByUser(userId), "STORE_UNAVAILABLE");
          await expectCode(
            store.consume(record.id, () => true),
            "STORE_UNAVAILABLE",
          );
          if (column === "attributes") {
            await expectCode(store.commit(record.id, { set: { a: 1 } }), "STORE_UNAVAILABLE");
          }
          const raw = store.db
            .prepare(`SELECT ${column}, version FROM stowage_sessions WHERE id = ?`)
            .get(record.id);
          expect(raw).toEqual({ [column]: text, version: 1 });
          await store.delete(record.id);
        }
      } finally {
        await store.close();
      }
    });

    it("after close() every method rejects with STORE_UNAVAILABLE; close twice is fine", async () => {
      const store = new SqliteStore({ path: freshPath() });
      const record = makeRecord();
      await store.insert(record);
      const lock = await store.lock(record.id, 10_000);
      await store.close();
      await store.close();
      await expectCode(store.get(record.id), "STORE_UNAVAILABLE");
      await expectCode(store.insert(makeRecord()), "STORE_UNAVAILABLE");
      await expectCode(store.commit(record.id, { set: { a: 1 } }), "STORE_UNAVAILABLE");
      await expectCode(store.rename(record.id, makeRecord(), { graceMs: 0 }), "STORE_UNAVAILABLE");
      await expectCode(
        store.consume(record.id, () => true),
        "STORE_UNAVAILABLE",
      );
      await expectCode(store.delete(record.id), "STORE_UNAVAILABLE");
      await expectCode(store.touch(record.id, Date.now()), "STORE_UNAVAILABLE");
      await expectCode(store.listByUser("u"), "STORE_UNAVAILABLE");
      await expectCode(store.deleteByUser("u"), "STORE_UNAVAILABLE");
      await expectCode(store.sweep(Date.now()), "STORE_UNAVAILABLE");
      await expectCode(store.lock("x", 1000), "STORE_UNAVAILABLE");
      await expectCode(lock!.release(), "STORE_UNAVAILABLE");
      await expectCode(store.publish({ type: "ended", id: record.id, at: 0 }), "STORE_UNAVAILABLE");
      await expectCode(
        store.subscribe(() => undefined),
        "STORE_UNAVAILABLE",
      );
      expect(() => store.db).toThrow(StowageError);
    });

    it("a database closed underneath the store gives STORE_UNAVAILABLE with the driver error as cause", async () => {
      const store = new SqliteStore({ path: freshPath() });
      const record = makeRecord();
      await store.insert(record);
      store.db.close();
      const error = await expectCode(store.get(record.id), "STORE_UNAVAILABLE");
      expect(error.cause).toBeInstanceOf(TypeError);
      await store.close();
    });

    it("a write lock held past busyTimeoutMs gives STORE_UNAVAILABLE (SQLITE_BUSY), then recovers", async () => {
      const path = freshPath();
      const store = new SqliteStore({ path, busyTimeoutMs: 100 });
      const record = makeRecord();
      await store.insert(record);
      const other = new Database(path);
      try {
        other.exec("BEGIN IMMEDIATE");
        const started = Date.now();
        const error = await expectCode(store.commit(record.id, { set: { a: 1 } }), "STORE_UNAVAILABLE");
        expect(Date.now() - started).toBeLessThan(5000);
        expect((error.cause as { code?: string }).code).toBe("SQLITE_BUSY");
        expect(error.message).not.toContain(record.id);
        // Readers are not blocked by a writer in WAL mode.
        expect((await store.get(record.id))?.version).toBe(1);
        other.exec("ROLLBACK");
        expect(await store.commit(record.id, { set: { a: 1 } })).toBe(2);
      } finally {
        other.close();
        await store.close();
      }
    });

    it("an error thrown by a consume check reaches the caller unchanged and leaves the record", async () => {
      const store = new SqliteStore({ path: freshPath() });
      try {
        const record = makeRecord();
        await store.insert(record);
        const boom = new RangeError("check failed");
        await expect(
          store.consume(record.id, () => {
            throw boom;
          }),
        ).rejects.toBe(boom);
        expect(await store.get(record.id)).toEqual(record);
      } finally {
        await store.close();
      }
    });
  });

  describe("sweeps", () => {
    it("deletes in batches of sweepBatch through the expiry index and returns the total", async () => {
      const path = freshPath();
      const store = new SqliteStore({ path, sweepBatch: 100, sweepIntervalMs: 0 });
      try {
        const past = Date.now() - 1000;
        for (let i = 0; i < 250; i++) {
          await store.insert(makeRecord({ expiresAt: past, idleExpiresAt: past }));
        }
        const live = [makeRecord(), makeRecord()];
        for (const record of live) await store.insert(record);
        const plan = store.db
          .prepare("EXPLAIN QUERY PLAN SELECT rowid FROM stowage_sessions WHERE expiry <= ? LIMIT ?")
          .all(Date.now(), 100) as { detail: string }[];
        expect(plan.map((row) => row.detail).join(" ")).toContain("stowage_sessions_expiry");

        expect(await store.sweep(Date.now())).toBe(250);
        expect(countRows(path, "stowage_sessions")).toBe(2);
        for (const record of live) expect(await store.get(record.id)).toEqual(record);
        expect(await store.sweep(Date.now())).toBe(0);
      } finally {
        await store.close();
      }
    });

    it("yields to other work between batches instead of holding the loop for the whole sweep", async () => {
      const store = new SqliteStore({ path: freshPath(), sweepBatch: 10, sweepIntervalMs: 0 });
      try {
        const past = Date.now() - 1000;
        for (let i = 0; i < 50; i++) await store.insert(makeRecord({ expiresAt: past, idleExpiresAt: past }));
        const live = makeRecord();
        await store.insert(live);
        const order: string[] = [];
        const sweeping = store.sweep(Date.now()).then((count) => order.push(`sweep ${count}`));
        const reading = store.get(live.id).then(() => order.push("get"));
        await Promise.all([sweeping, reading]);
        expect(order).toEqual(["get", "sweep 50"]);
      } finally {
        await store.close();
      }
    });

    it("also removes lapsed aliases and leases; fences keep rising after a lease row is swept", async () => {
      const path = freshPath();
      const store = new SqliteStore({ path, sweepIntervalMs: 0 });
      try {
        const old = makeRecord();
        await store.insert(old);
        await store.rename(old.id, makeRecord(), { graceMs: 50 });
        const first = await store.lock(old.id, 50);
        expect(countRows(path, "stowage_aliases")).toBe(1);
        expect(countRows(path, "stowage_locks")).toBe(1);
        await store.sweep(Date.now() + 1000);
        expect(countRows(path, "stowage_aliases")).toBe(0);
        expect(countRows(path, "stowage_locks")).toBe(0);
        const second = await store.lock(old.id, 1000);
        expect(second!.fence).toBeGreaterThan(first!.fence);
      } finally {
        await store.close();
      }
    });

    it("runs by itself every sweepIntervalMs", async () => {
      const path = freshPath();
      const store = new SqliteStore({ path, sweepIntervalMs: 20 });
      try {
        const past = Date.now() - 1000;
        await store.insert(makeRecord({ expiresAt: past, idleExpiresAt: past }));
        await waitFor(() => countRows(path, "stowage_sessions") === 0, 5000, "background sweep");
      } finally {
        await store.close();
      }
    });

    it("sweepIntervalMs 0 leaves expired rows until sweep() is called", async () => {
      const path = freshPath();
      const store = new SqliteStore({ path, sweepIntervalMs: 0 });
      try {
        const past = Date.now() - 1000;
        await store.insert(makeRecord({ expiresAt: past, idleExpiresAt: past }));
        await sleep(200);
        expect(countRows(path, "stowage_sessions")).toBe(1);
        expect(await store.sweep(Date.now())).toBe(1);
      } finally {
        await store.close();
      }
    });
  });

  describe("aliases", () => {
    it("a second rotation inside the grace window keeps the first old id resolving to the newest id", async () => {
      const store = new SqliteStore({ path: freshPath() });
      try {
        const a = makeRecord();
        const b = makeRecord();
        const c = makeRecord();
        await store.insert(a);
        await store.rename(a.id, b, { graceMs: 60_000 });
        await store.rename(b.id, c, { graceMs: 60_000 });
        const viaA = await store.get(a.id);
        expect(viaA?.id).toBe(c.id);
        expect(viaA?.via?.verifier).toBe(a.verifier);
        expect((await store.get(b.id))?.via?.verifier).toBe(b.verifier);
      } finally {
        await store.close();
      }
    });

    it("a rename without grace (login) cuts every earlier alias, so an old token cannot follow", async () => {
      const store = new SqliteStore({ path: freshPath() });
      try {
        const a = makeRecord();
        const b = makeRecord();
        const c = makeRecord({ userId: newUserId() });
        await store.insert(a);
        await store.rename(a.id, b, { graceMs: 60_000 });
        await store.rename(b.id, c, { graceMs: 0 });
        expect(await store.get(a.id)).toBeUndefined();
        expect(await store.get(b.id)).toBeUndefined();
        expect((await store.get(c.id))?.via).toBeUndefined();
      } finally {
        await store.close();
      }
    });

    it("deleting the record ends its aliases too", async () => {
      const store = new SqliteStore({ path: freshPath() });
      try {
        const a = makeRecord();
        const b = makeRecord();
        await store.insert(a);
        await store.rename(a.id, b, { graceMs: 60_000 });
        expect(await store.delete(b.id)).toBe(true);
        expect(await store.get(a.id)).toBeUndefined();
        await store.insert(makeRecord({ id: a.id }));
      } finally {
        await store.close();
      }
    });
  });

  describe("events across connections", () => {
    it("a store on another connection to the file receives the event by polling, once", async () => {
      const path = freshPath();
      const publisher = new SqliteStore({ path });
      const listener = new SqliteStore({ path, eventPollMs: 20 });
      const heardByListener: StoreEvent[] = [];
      const heardByPublisher: StoreEvent[] = [];
      const stopListener = await listener.subscribe((event) => heardByListener.push(event));
      const stopPublisher = await publisher.subscribe((event) => heardByPublisher.push(event));
      try {
        const event: StoreEvent = {
          type: "replaced",
          id: makeRecord().id,
          connection: { id: "c", node: "n", generation: 1, received: 0, key: "k0" },
          at: Date.now(),
        };
        await publisher.publish(event);
        await waitFor(() => heardByListener.length > 0, 5000, "polled event");
        expect(heardByListener).toEqual([event]);
        // A later event proves the pollers ran again; neither side may see the first one twice.
        const later: StoreEvent = { type: "ended", id: makeRecord().id, at: Date.now() };
        await listener.publish(later);
        await waitFor(() => heardByPublisher.length > 1, 5000, "second event");
        expect(heardByPublisher).toEqual([event, later]);
        expect(heardByListener).toEqual([event, later]);
      } finally {
        await stopListener();
        await stopPublisher();
        await publisher.close();
        await listener.close();
      }
    });

    it("an event published by another process arrives; a malformed row is skipped", async () => {
      const path = freshPath();
      const store = new SqliteStore({ path, eventPollMs: 20 });
      const heard: StoreEvent[] = [];
      const stop = await store.subscribe((event) => heard.push(event));
      try {
        store.db
          .prepare("INSERT INTO stowage_events (origin, at, body) VALUES ('x', ?, ?)")
          .run(Date.now(), "{broken");
        const id = makeRecord().id;
        await expectCleanExit(startWorker("sqlite-publish-worker.ts", [path, id]));
        await waitFor(() => heard.length > 0, 5000, "event from the child");
        expect(heard).toEqual([{ type: "revoked", id, userId: "worker", at: heard[0]!.at }]);
      } finally {
        await stop();
        await store.close();
      }
    }, 60_000);

    it("a listener that throws does not stop the others or the publisher", async () => {
      const store = new SqliteStore({ path: freshPath() });
      const heard: StoreEvent[] = [];
      const stopBad = await store.subscribe(() => {
        throw new Error("listener bug");
      });
      const stopGood = await store.subscribe((event) => heard.push(event));
      try {
        const event: StoreEvent = { type: "ended", id: makeRecord().id, at: Date.now() };
        await store.publish(event);
        expect(heard).toEqual([event]);
      } finally {
        await stopBad();
        await stopGood();
        await store.close();
      }
    });
  });
});
