import { execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSessions, type Sessions } from "../../src/index.js";
import { openStore } from "../../src/stores/open.js";
import { SqliteStore } from "../../src/stores/sqlite/index.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const MAIN = join(ROOT, "src/cli/main.ts");
const dir = mkdtempSync(join(tmpdir(), "stowage-cli-"));
const STORE = `sqlite:${join(dir, "sessions.db")}`;
const DAY = 86_400_000;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", MAIN, ...args],
      { cwd: ROOT, timeout: 60_000, env: { ...process.env, PORT: "" } },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Runs a command under `script`, a real pseudo-terminal, for at most `ms`; resolves what it printed. */
function ptyRun(command: string, ms: number): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn("script", ["-qfec", command, "/dev/null"], {
      cwd: ROOT,
      env: { ...process.env, PORT: "" },
    });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk;
    });
    const timer = setTimeout(() => child.kill("SIGTERM"), ms);
    child.on("close", () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

/** Runs the CLI on pipes for `ms`, then SIGTERM; resolves its stdout. */
function timedRun(args: string[], ms: number): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", MAIN, ...args], { cwd: ROOT });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk;
    });
    setTimeout(() => child.kill("SIGTERM"), ms);
    child.on("close", () => resolve(out));
  });
}

// Sessions made through the library, as an app would; the CLI then works on the same file.
let sessions: Sessions;
const alice: { id: string; token: string }[] = [];
let bob: { id: string; token: string };
let stale: string;

async function signIn(user: string, device: string): Promise<{ id: string; token: string }> {
  const s = sessions.create();
  s.login(user);
  s.set("device", device);
  s.set("counter", 3);
  await sessions.commit(s);
  return { id: s.id, token: s.token };
}

beforeAll(async () => {
  sessions = createSessions({ store: new SqliteStore({ path: STORE.slice(7), sweepIntervalMs: 0 }) });
  alice.push(await signIn("alice", "Chrome on Linux"), await signIn("alice", "Firefox on macOS"));
  bob = await signIn("bob", "Safari on iOS");
  // Created ten days ago with the default 30 min idle timeout: expired, waiting for a sweep.
  const past = createSessions({ store: sessions.store, clock: { now: () => Date.now() - 10 * DAY } });
  const old = past.create();
  old.login("carol");
  await past.commit(old);
  stale = old.id;
});

afterAll(async () => {
  await sessions.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("stowage CLI", () => {
  it("lists a user's sessions by id prefix, never by token or whole id", async () => {
    const run = await cli("list", "--user", "alice", "--store", STORE);
    expect(run.code).toBe(0);
    for (const s of alice) {
      expect(run.stdout).toContain(s.id.slice(0, 8));
      expect(run.stdout).not.toContain(s.id);
      expect(run.stdout).not.toContain(s.token.split(".")[1]!);
    }
    expect(run.stdout).toContain("Chrome on Linux");
    expect(run.stdout).toContain("Firefox on macOS");
    expect(run.stdout).not.toContain(bob.id.slice(0, 8));
    expect(run.stdout).toContain("2 live sessions");
  });

  it("shows one session by whole id, or by prefix with --user, without secrets", async () => {
    const [byId, byPrefix] = await Promise.all([
      cli("show", "--store", STORE, "--", alice[0]!.id),
      cli("show", "--user", "alice", "--store", STORE, "--", alice[0]!.id.slice(0, 8)),
    ]);
    for (const run of [byId, byPrefix]) {
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/^user\s+alice$/m);
      expect(run.stdout).toMatch(/^level\s+USER \(100\)$/m);
      expect(run.stdout).toContain('device: "Chrome on Linux"');
      expect(run.stdout).toContain("counter: 3");
      expect(run.stdout).not.toContain(alice[0]!.token.split(".")[1]!);
      expect(run.stdout).not.toContain("$stowage.csrf");
    }
    expect(byPrefix.stdout).toContain(alice[0]!.id);
  });

  it("says so when a session is not there (exit 1)", async () => {
    const run = await cli(
      "show",
      "--store",
      STORE,
      "--",
      bob.id.replace(/^./, bob.id[0] === "A" ? "B" : "A"),
    );
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("no live session");
  });

  it("counts live and expired sessions and users, and prints the manager counters", async () => {
    const run = await cli("stats", "--store", STORE);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^store\s+sqlite$/m);
    expect(run.stdout).toMatch(/^live sessions\s+3$/m);
    expect(run.stdout).toMatch(/^expired, not swept\s+1$/m);
    expect(run.stdout).toMatch(/^signed-in users\s+2$/m);
    expect(run.stdout).toMatch(/^manager counters \(this run\): created 0, loaded 0, malformed 0/m);
  });

  it("sweeps the expired session and leaves the live ones", async () => {
    const run = await cli("sweep", "--store", STORE);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/removed 1 expired session in \d+ ms/);
    expect(run.stderr).toContain("sweeping expired sessions");
    expect(await sessions.store.get(stale)).toBeUndefined();
    expect(await sessions.load(bob.token)).not.toBeNull();
    const stats = await cli("stats", "--store", STORE);
    expect(stats.stdout).toMatch(/^expired, not swept\s+0$/m);
    expect(stats.stdout).toMatch(/^live sessions\s+3$/m);
  });

  it("benches a store with progress and ops/s, and leaves nothing behind", async () => {
    const run = await cli("bench", "--count", "40", "--store", STORE);
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/bench: \d+\/120/);
    for (const step of ["create", "load", "commit"])
      expect(run.stdout).toMatch(new RegExp(`^${step}\\s+[\\d,]+ ops/s`, "m"));
    const stats = await cli("stats", "--store", STORE);
    expect(stats.stdout).toMatch(/^live sessions\s+3$/m);
    const memory = await cli("bench", "--count", "20", "--store", "memory:");
    expect(memory.code).toBe(0);
    expect(memory.stdout).toContain("memory store, 20 sessions per step");
  });

  it("revokes one session by prefix, then every session of a user", async () => {
    const one = await cli("revoke", "--user", "alice", "--store", STORE, "--", alice[1]!.id.slice(0, 8));
    expect(one.code).toBe(0);
    expect(one.stdout).toContain(`revoked session ${alice[1]!.id.slice(0, 8)}`);
    expect(await sessions.load(alice[1]!.token)).toBeNull();
    expect(await sessions.load(alice[0]!.token)).not.toBeNull();

    const all = await cli("revoke", "--user", "bob", "--store", STORE);
    expect(all.code).toBe(0);
    expect(all.stdout).toContain('revoked 1 session of user "bob"');
    expect(await sessions.load(bob.token)).toBeNull();
    expect(await sessions.load(alice[0]!.token)).not.toBeNull();
  });

  it("refuses bad arguments with a message and exit code 2", async () => {
    const cases: [string[], string][] = [
      [["stats", "--interval", "1", "--store", STORE], "--interval goes with --watch"],
      [["stats", "--watch", "--interval", "0", "--store", STORE], "--interval needs a number of seconds"],
      [["list", "--user", "alice", "--colour", "--store", STORE], "Unknown option '--colour'"],
      [["list", "--user", "alice", "extra", "--store", STORE], 'unexpected argument "extra"'],
      [["show", "--store", STORE], "show needs a session ID"],
      [["show", "abcd1234", "--store", STORE], "give the whole id, or --user"],
      [["revoke", "--store", STORE], "revoke needs a session ID or --user"],
      [["bench", "--count", "lots", "--store", STORE], "--count must be a whole number"],
      [["serve", "--port", "70000", "--store", STORE], "--port must be a whole number from 1 to 65535"],
      [["frobnicate"], 'unknown command "frobnicate"'],
      [[], "Usage: stowage <command>"],
    ];
    const runs = await Promise.all(cases.map(([args]) => cli(...args)));
    runs.forEach((run, i) => {
      expect(run.code, cases[i]![0].join(" ")).toBe(2);
      expect(run.stderr).toContain(cases[i]![1]);
      expect(run.stderr).not.toMatch(/^\s+at /m);
    });
  });

  it("reports a bad store URL with the CONFIG_INVALID message, no stack and no secret", async () => {
    const expected = await openStore("bogus://x").then(
      () => "",
      (error: Error & { code?: string }) => {
        expect(error.code).toBe("CONFIG_INVALID");
        return error.message;
      },
    );
    const run = await cli("stats", "--store", "bogus://x");
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(expected);
    expect(run.stderr).not.toMatch(/^\s+at /m);

    const secret = await cli("list", "--user", "alice", "--store", "postgres:hunter2");
    expect(secret.code).toBe(2);
    expect(secret.stderr).toContain("store URL: postgres: needs a host");
    expect(secret.stderr).not.toContain("hunter2");
  });

  it("prints help for every command", async () => {
    const names = ["serve", "list", "show", "revoke", "sweep", "stats", "bench"];
    const runs = await Promise.all(names.map((name) => cli(name, "--help")));
    runs.forEach((run, i) => {
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(new RegExp(`^Usage: stowage ${names[i]}`));
      expect(run.stdout).toContain("--store URL");
    });
    const top = await cli("--help");
    expect(top.code).toBe(0);
    for (const name of names) expect(top.stdout).toMatch(new RegExp(`^  ${name}\\s`, "m"));
  });
});

describe("a malformed store URL on the command line", () => {
  it("exits 2 with one line that names no password", async () => {
    for (const url of [
      "redis://u:hunter2@127.0.0.1:notaport",
      "postgres://u:hunter2@127.0.0.1:notaport/db",
    ]) {
      const run = await cli("stats", "--store", url);
      expect(run.code).toBe(2);
      expect(run.stderr.trim().split("\n")).toHaveLength(1);
      expect(run.stderr).toMatch(/CONFIG|URL|url/);
      expect(run.stderr + run.stdout).not.toContain("hunter2");
    }
  });
});

describe("command-line conventions", () => {
  it("--version prints the package version", async () => {
    const version = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string })
      .version;
    for (const flag of ["--version", "-v"]) {
      const run = await cli(flag);
      expect(run.code).toBe(0);
      expect(run.stdout.trim()).toBe(version);
    }
  });

  it("an ID that starts with - works after --, and without it the error says so", async () => {
    const bare = await cli("revoke", "-abcdefg", "--user", "nobody", "--store", "memory:");
    expect(bare.code).toBe(2);
    expect(bare.stderr).toContain("goes after --");
    const after = await cli("revoke", "--user", "nobody", "--store", "memory:", "--", "-abcdefg");
    expect(after.code).toBe(1);
    expect(after.stderr).toContain('starts with "-abcdefg"');
  });

  it("a single-value option given twice is a usage error, not the last one silently", async () => {
    const run = await cli("list", "--user", "a", "--user", "b", "--store", "memory:");
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("--user given more than once");
  });

  it("list without --user streams every live session of the store, signed in or not", async () => {
    const dora = [await signIn("dora", "Chrome on Linux"), await signIn("dora", "Edge on Windows")];
    const anonymous = sessions.create();
    anonymous.set("device", "Curl");
    await sessions.commit(anonymous);
    const run = await cli("list", "--store", STORE);
    expect(run.code).toBe(0);
    const lines = run.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^ID\s+USER\s+CREATED\s+EXPIRES\s+LEVEL\s+DEVICE$/);
    for (const s of [...dora, { id: anonymous.id }]) {
      expect(lines.some((line) => line.startsWith(s.id.slice(0, 8)))).toBe(true);
    }
    expect(lines.some((line) => line.startsWith(stale.slice(0, 8)))).toBe(false);
    expect(lines.at(-1)).toMatch(/^\d+ live sessions in the store$/);
    expect(run.stdout).not.toContain(dora[0]!.token);
  });

  it("--json prints one documented object per session, with no secret", async () => {
    const erin = [await signIn("erin", "Chrome on Linux"), await signIn("erin", "Firefox on macOS")];
    const all = await cli("list", "--json", "--store", STORE);
    const objects = all.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const first = objects.find((o) => o.id === erin[0]!.id)!;
    expect(Object.keys(first).sort()).toEqual(
      [
        "attributes",
        "createdAt",
        "device",
        "expiresAt",
        "id",
        "idleExpiresAt",
        "kind",
        "language",
        "lastLoginAt",
        "level",
        "loginType",
        "userId",
      ].sort(),
    );
    expect(first).toMatchObject({
      kind: "http",
      userId: "erin",
      level: 100,
      loginType: "human",
      device: "Chrome on Linux",
    });
    expect(first.attributes).toEqual({ device: "Chrome on Linux", counter: 3 });
    expect(new Date(first.createdAt as string).toISOString()).toBe(first.createdAt);
    const mine = await cli("list", "--user", "erin", "--json", "--store", STORE);
    expect(
      mine.stdout
        .trim()
        .split("\n")
        .map((line) => (JSON.parse(line) as { id: string }).id),
    ).toEqual(erin.map((a) => a.id));
    const shown = await cli("show", erin[0]!.id, "--json", "--store", STORE);
    const detail = JSON.parse(shown.stdout) as Record<string, unknown>;
    expect(detail).toMatchObject({
      id: erin[0]!.id,
      userId: "erin",
      renamedFrom: null,
      channel: null,
      connection: null,
    });
    expect(typeof detail.version).toBe("number");
    for (const text of [all.stdout, mine.stdout, shown.stdout]) {
      expect(text).not.toContain(erin[0]!.token.split(".")[1]);
      expect(text).not.toMatch(/verifier|csrf/i);
    }
  });

  it("stats --watch redraws in place on a terminal (a real pseudo-terminal) and prints blocks on a pipe", async () => {
    const command = `${process.execPath} --import tsx ${MAIN} stats --watch --interval 0.3 --store ${STORE}`;
    const tty = await ptyRun(command, 1600);
    expect(tty).toContain("\x1b[H\x1b[2J");
    expect(
      tty.split("\x1b[H\x1b[2J").filter((frame) => frame.includes("live sessions")).length,
    ).toBeGreaterThanOrEqual(2);
    const piped = await timedRun(["stats", "--watch", "--interval", "0.3", "--store", STORE], 1600);
    expect(piped).not.toContain("\x1b[");
    expect(piped.split("live sessions").length - 1).toBeGreaterThanOrEqual(2);
  });

  it("progress on a terminal is drawn in place (a real pseudo-terminal)", async () => {
    const out = await ptyRun(
      `${process.execPath} --import tsx ${MAIN} bench --count 30000 --store memory:`,
      60_000,
    );
    expect(out).toContain("\r\x1b[2K");
    expect(out).toMatch(/bench: /);
  });

  it("progress on a pipe is one line per step, never the same step twice", async () => {
    const run = await cli("bench", "--count", "30000", "--store", "memory:");
    expect(run.code).toBe(0);
    const lines = run.stderr.split("\n").filter((line) => line.startsWith("bench: "));
    expect(lines.length).toBeGreaterThan(0);
    expect(new Set(lines.map((line) => line.replace(/ [\d.]+s$/, ""))).size).toBe(lines.length);
  });
});
