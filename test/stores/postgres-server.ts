import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";

function binDir(): string {
  try {
    const dir = execFileSync("pg_config", ["--bindir"], { encoding: "utf8" }).trim();
    if (existsSync(join(dir, "initdb"))) return dir;
  } catch {
    // pg_config is not always on PATH; fall back to the Debian layout.
  }
  const versions = readdirSync("/usr/lib/postgresql")
    .filter((v) => existsSync(join("/usr/lib/postgresql", v, "bin", "initdb")))
    .sort((a, b) => Number(b) - Number(a));
  if (!versions[0]) throw new Error("no PostgreSQL server binaries found");
  return join("/usr/lib/postgresql", versions[0], "bin");
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject()));
    });
  });
}

/** Pids whose parent is `pid` (the postmaster's children call setsid, so a process group will not reach them). */
function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) children.push(Number(entry));
    } catch {
      // The process exited while we looked.
    }
  }
  return children;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A PostgreSQL server owned by one test file: initdb into a temp dir as the `postgres` OS user (initdb
 * refuses root), trust auth, loopback only, fsync on. It can be killed, frozen and restarted on the same port.
 */
export class TestPostgres {
  readonly port: number;
  readonly #root: string;
  readonly #data: string;
  readonly #bin: string;
  #runner: ChildProcess | undefined;
  #log = "";
  #uid = 0;
  #gid = 0;

  private constructor(port: number) {
    this.port = port;
    this.#bin = binDir();
    this.#root = mkdtempSync(join(tmpdir(), "stowage-pg-"));
    this.#data = join(this.#root, "data");
  }

  /** Creates the cluster and starts it. */
  static async create(): Promise<TestPostgres> {
    const server = new TestPostgres(await freePort());
    try {
      server.#uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }));
      server.#gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }));
      chownSync(server.#root, server.#uid, server.#gid);
      const initdb = [join(server.#bin, "initdb"), "-D", server.#data, "-A", "trust", "-U", "postgres"];
      execFileSync("runuser", ["-u", "postgres", "--", ...initdb, "-E", "UTF8", "--no-sync"], {
        stdio: "pipe",
      });
      await server.start();
      return server;
    } catch (error) {
      await server.destroy();
      throw error;
    }
  }

  /** postgres://postgres@127.0.0.1:<port>/postgres */
  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  /** The server's recent log lines, for failure messages. */
  get log(): string {
    return this.#log.slice(-4000);
  }

  /** Starts the server (after create, or after a kill) and waits until it accepts connections. */
  async start(): Promise<void> {
    const args = ["-D", this.#data, "-p", String(this.port), "-k", this.#root];
    const settings = ["listen_addresses=127.0.0.1", "fsync=on", "max_connections=60", "shared_buffers=16MB"];
    // Spawned straight as the postgres user (not through runuser), so the postmaster is our own child: a
    // supervisor in between would stop itself on SIGSTOP and leave a killed postmaster unreaped (a zombie
    // that still "holds" the lock file on restart).
    const runner = spawn(join(this.#bin, "postgres"), [...args, ...settings.flatMap((s) => ["-c", s])], {
      stdio: ["ignore", "ignore", "pipe"],
      uid: this.#uid,
      gid: this.#gid,
    });
    runner.stderr?.on("data", (chunk: Buffer) => {
      this.#log = (this.#log + chunk.toString()).slice(-20_000);
    });
    this.#runner = runner;
    const deadline = Date.now() + 30_000;
    for (;;) {
      const client = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: 1000 });
      client.on("error", () => undefined);
      try {
        await client.connect();
        await client.query("SELECT 1");
        await client.end();
        return;
      } catch (error) {
        await client.end().catch(() => undefined);
        if (Date.now() > deadline || runner.exitCode !== null) {
          throw new Error(`test PostgreSQL did not start: ${String(error)}\n${this.log}`);
        }
        await sleep(100);
      }
    }
  }

  /** The running postmaster's pid. */
  #postmaster(): number | undefined {
    const pid = this.#runner?.pid;
    return pid !== undefined && this.#runner?.exitCode === null && this.#runner.signalCode === null
      ? pid
      : undefined;
  }

  /** Sends `signal` to the postmaster and every one of its children (backends included) at once. */
  signal(signal: NodeJS.Signals): void {
    const pid = this.#postmaster();
    if (pid === undefined) return;
    for (const target of [pid, ...childrenOf(pid)]) {
      try {
        process.kill(target, signal);
      } catch {
        // Already gone.
      }
    }
  }

  /** SIGKILLs the whole server, as a crash would, and waits until every process is gone. */
  async kill(): Promise<void> {
    const pid = this.#postmaster();
    if (pid === undefined) return;
    const all = [pid, ...childrenOf(pid)];
    for (const target of all) {
      try {
        process.kill(target, "SIGKILL");
      } catch {
        // Already gone.
      }
    }
    const runner = this.#runner;
    if (runner && runner.exitCode === null && runner.signalCode === null) {
      await new Promise((resolve) => runner.once("exit", resolve));
    }
    const deadline = Date.now() + 10_000;
    while (all.some(alive) && Date.now() < deadline) await sleep(20);
  }

  /** Kills the server and removes its files. */
  async destroy(): Promise<void> {
    this.signal("SIGCONT");
    await this.kill();
    rmSync(this.#root, { recursive: true, force: true });
  }
}
