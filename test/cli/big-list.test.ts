import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { afterAll, expect, it } from "vitest";
import { SqliteStore } from "../../src/stores/sqlite/index.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "stowage-big-list-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const COUNT = 1_000_000;
const MAX_RSS_MIB = 200;

/** Peak resident memory of a running process so far (VmHWM), in KiB; 0 once it is gone. */
function peakKiB(pid: number): number {
  try {
    const line = readFileSync(`/proc/${pid}/status`, "utf8")
      .split("\n")
      .find((l) => l.startsWith("VmHWM:"));
    return line ? Number(line.replace(/\D+/g, "")) : 0;
  } catch {
    return 0;
  }
}

it(`list --json over ${COUNT.toLocaleString("en-US")} SQLite sessions streams them all with peak RSS ≤ ${MAX_RSS_MIB} MiB`, async () => {
  const path = join(dir, "big.db");
  // The schema as the store makes it, then rows written straight into it: a million sessions in seconds.
  const schema = new SqliteStore({ path });
  await schema.sweep(Date.now()); // opens (and migrates) the file
  await schema.close();
  const db = new Database(path);
  const insert = db.prepare(
    `INSERT INTO stowage_sessions (id, verifier, version, created_at, rotated_at, expires_at, idle_expires_at,
       user_id, level, login_type, attributes) VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?, 'human', ?)`,
  );
  const now = Date.now();
  const random = randomBytes(16 * COUNT);
  db.transaction(() => {
    for (let i = 0; i < COUNT; i++) {
      const id = random.toString("base64url", i * 16, i * 16 + 16);
      insert.run(
        id,
        "v".repeat(43),
        now,
        now,
        now + 86_400_000,
        now + 3_600_000,
        i % 2 ? `user-${i % 5000}` : null,
        100,
        `{"device":"Chrome on Linux","n":${i}}`,
      );
    }
  })();
  db.close();

  // The built CLI, as an operator runs it; its output goes through a pipe and is only counted.
  const child = spawn(process.execPath, ["dist/cli/main.js", "list", "--json", "--store", `sqlite:${path}`], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let lines = 0;
  let tail = "";
  let firstLine = "";
  child.stdout.on("data", (chunk: Buffer) => {
    const text = tail + chunk.toString();
    const parts = text.split("\n");
    tail = parts.pop()!;
    if (firstLine === "" && parts.length > 0) firstLine = parts[0]!;
    lines += parts.length;
  });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk;
  });
  let peak = 0;
  const poll = setInterval(() => {
    peak = Math.max(peak, peakKiB(child.pid!));
  }, 20);
  const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
  clearInterval(poll);
  expect(stderr).toBe("");
  expect(code).toBe(0);
  expect(lines).toBe(COUNT);
  expect(JSON.parse(firstLine)).toMatchObject({ kind: "http", device: "Chrome on Linux" });
  const mib = peak / 1024;
  console.info(`list --json over ${COUNT} SQLite sessions: peak RSS ${mib.toFixed(1)} MiB`);
  expect(peak).toBeGreaterThan(0);
  expect(mib).toBeLessThanOrEqual(MAX_RSS_MIB);
}, 180_000);
