import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createServer } from "node:net";
import { promisify } from "node:util";

const exec = promisify(execFile);

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

function anyPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject()));
    });
  });
}

/**
 * A free loopback port P; with `clusterBus`, P + 10000 (Redis Cluster's bus port) is free too.
 * `avoid` lists ports already handed out but not yet bound.
 */
export async function freePort(options: { clusterBus?: boolean; avoid?: number[] } = {}): Promise<number> {
  for (let tries = 0; tries < 200; tries++) {
    const port = await anyPort();
    if (options.avoid?.includes(port)) continue;
    if (!options.clusterBus) return port;
    if (port + 10_000 <= 65_535 && (await canBind(port + 10_000))) return port;
  }
  throw new Error("no free port pair found");
}

/** Runs redis-cli against a loopback port; resolves its stdout. */
export async function redisCli(port: number, ...args: string[]): Promise<string> {
  return redisCliWithin(10_000, port, ...args);
}

/** `redisCli` with a time limit of its own, for a command that waits on the servers (a cluster join). */
export async function redisCliWithin(timeoutMs: number, port: number, ...args: string[]): Promise<string> {
  const { stdout } = await exec("redis-cli", ["-h", "127.0.0.1", "-p", String(port), ...args], {
    timeout: timeoutMs,
  });
  return stdout;
}

/** Polls until `fn` holds, or throws after `ms`. */
export async function until(fn: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await fn().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A redis-server process owned by a test. */
export interface RedisProcess {
  readonly port: number;
  readonly child: ChildProcess;
  /** Resolves once the process has exited. */
  readonly exited: Promise<void>;
}

/** Starts `redis-server` on a loopback port, without persistence, and waits until it answers PING. */
export async function startRedisServer(port: number, extraArgs: string[] = []): Promise<RedisProcess> {
  const child = spawn(
    "redis-server",
    [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--daemonize",
      "no",
      ...extraArgs,
    ],
    { stdio: "ignore" },
  );
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let dead = false;
  void exited.then(() => {
    dead = true;
  });
  await until(
    async () => !dead && (await redisCli(port, "ping")).trim() === "PONG",
    10_000,
    `redis on ${port}`,
  );
  return { port, child, exited };
}

/** Stops a server: SIGTERM, then SIGKILL if it lingers. */
export async function stopRedisServer(
  server: RedisProcess,
  signal: NodeJS.Signals = "SIGTERM",
): Promise<void> {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return;
  server.child.kill(signal);
  const timer = setTimeout(() => server.child.kill("SIGKILL"), 3000);
  await server.exited;
  clearTimeout(timer);
}
