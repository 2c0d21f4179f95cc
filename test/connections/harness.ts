import type { IncomingMessage } from "node:http";
import { createConnection as connectTcp, createServer, type Server, type Socket } from "node:net";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import WebSocket from "ws";
import { type ClientConnection, type ClientEvents, connect } from "../../src/client/index.js";
import type { Connection } from "../../src/connections/connection.js";
import type { Authenticate, ConnectionServer } from "../../src/connections/server.js";
import { connectTcp as connectTcpClient, type TcpConnectOptions } from "../../src/connections/tcp-client.js";
import {
  createTcpConnectionServer,
  type TcpChannelOptions,
  type TcpConnectionServer,
} from "../../src/connections/tcp-server.js";
import { createConnectionServer, type WsConnectionOptions } from "../../src/connections/ws.js";
import type { Sessions } from "../../src/core/manager.js";
import type { Attributes } from "../../src/core/record.js";
import type { SessionStore } from "../../src/core/store.js";
import { createSessions, KeyRing } from "../../src/index.js";

/**
 * The transports the connection tests run on: WebSocket, TCP in clear, and TCP with the encrypted
 * channel. A test names where its client goes with a URL: `ws://`, `tcp://` or `tcp+channel://`.
 */
export const WIRES = ["ws", "tcp", "tcp+channel"] as const;
export type Wire = (typeof WIRES)[number];

/** The key ring of every test manager: channel secrets need one. */
export const TEST_KEYS = [{ id: "k1", key: KeyRing.generateKey() }];

/** The URL of a server of `wire` on `port`, for TestClient and RawSocket; `user` is who authenticate says it is. */
export function urlOf(wire: Wire, port: number, user?: string): string {
  const query = user === undefined ? "" : `?user=${user}`;
  return wire === "ws" ? `ws://127.0.0.1:${port}/live${query}` : `${wire}://127.0.0.1:${port}${query}`;
}

/** The wire a URL names. */
export function wireOf(url: string): Wire {
  return url.startsWith("ws") ? "ws" : url.startsWith("tcp+channel") ? "tcp+channel" : "tcp";
}

/** The user a test client named: from the upgrade's URL (WebSocket) or its `auth` value (TCP). */
export function userOf(request: unknown, auth: unknown): string | undefined {
  const url = (request as IncomingMessage).url;
  if (typeof url === "string") return new URL(url, "http://x").searchParams.get("user") ?? undefined;
  return (auth as { user?: string } | undefined)?.user;
}

/** A connection server of either transport: what the tests use of both. */
export type LiveServer = ConnectionServer<Attributes, never> & {
  address(): { port: number };
  ready: Promise<void>;
};

/**
 * A TCP proxy between a client and the server, so a test can cut the network for real: `cut()` destroys
 * every open pair of sockets (both ends see the connection drop); `stall()` keeps them open but forwards
 * nothing more (a half-open connection: neither end learns of it); `heal()` lets new connections through.
 */
export class CutProxy {
  readonly #server: Server;
  readonly #pairs = new Set<[Socket, Socket]>();
  readonly #stalled = new Set<[Socket, Socket]>();
  #refusing = false;
  port = 0;

  constructor(public targetPort: number) {
    this.#server = createServer((client) => {
      if (this.#refusing) return client.destroy();
      const upstream = connectTcp(this.targetPort, "127.0.0.1");
      const pair: [Socket, Socket] = [client, upstream];
      this.#pairs.add(pair);
      client.pipe(upstream);
      upstream.pipe(client);
      const drop = () => {
        this.#pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on("error", drop).on("close", drop);
      upstream.on("error", drop).on("close", drop);
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
    this.port = (this.#server.address() as { port: number }).port;
    return this;
  }

  /** Drops every connection through the proxy, both ways. */
  cut(): void {
    for (const [a, b] of this.#pairs) {
      a.destroy();
      b.destroy();
    }
    this.#pairs.clear();
  }

  /** Keeps every connection open but carries no more bytes either way (half-open). */
  stall(): void {
    for (const [a, b] of this.#pairs) {
      a.unpipe(b);
      b.unpipe(a);
      a.pause();
      b.pause();
      this.#stalled.add([a, b]);
    }
    this.#pairs.clear();
  }

  /** Refuses (true) or accepts (false) new connections. */
  refuse(on: boolean): void {
    this.#refusing = on;
  }

  async stop(): Promise<void> {
    this.cut();
    for (const [a, b] of this.#stalled) {
      a.destroy();
      b.destroy();
    }
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** Options of a test server: the protocol's, WebSocket's, and the TCP channel's. */
export type LiveOptions = Partial<Omit<WsConnectionOptions, "authenticate">> & {
  authenticate?: Authenticate<Attributes, unknown>;
  channel?: TcpChannelOptions;
  frameTimeoutMs?: number;
};

/** A manager and a connection server of `wire` on a port of its own, on `store`. */
export async function startLive(
  store: SessionStore,
  options: LiveOptions = {},
  sessions: Sessions = createSessions({ store, keys: TEST_KEYS }),
  wire: Wire = "ws",
): Promise<{
  sessions: Sessions;
  live: LiveServer;
  port: number;
  wire: Wire;
  url(port?: number, user?: string): string;
  stop(): Promise<void>;
}> {
  const { channel, frameTimeoutMs, ...common } = options;
  const base = { sessions, port: 0, heartbeatMs: 1000, ...common } as never;
  const live = (wire === "ws"
    ? createConnectionServer(base)
    : createTcpConnectionServer({
        ...(base as object),
        ...(wire === "tcp+channel" ? { channel: channel ?? true } : {}),
        ...(frameTimeoutMs === undefined ? {} : { frameTimeoutMs }),
      } as never)) as unknown as LiveServer;
  await live.ready;
  const port = live.address().port;
  return {
    sessions,
    live,
    port,
    wire,
    url: (at = port, user) => urlOf(wire, at, user),
    stop: () => live.close(),
  };
}

/** The TCP server of a test server started on a TCP wire. */
export function tcpServer(live: LiveServer): TcpConnectionServer {
  return live as unknown as TcpConnectionServer;
}

/** A client of the wire its URL names: stowage/client on ws, connectTcp on tcp. */
export function connectTo(url: string, options: Parameters<typeof connect>[1] & TcpConnectOptions = {}) {
  const wire = wireOf(url);
  if (wire === "ws") return connect(url, { WebSocket: WebSocket as never, ...options });
  const parsed = new URL(url.replace(/^tcp(\+channel)?:/, "http:"));
  const user = parsed.searchParams.get("user");
  const { WebSocket: _ignored, ...rest } = options;
  return connectTcpClient(
    { host: parsed.hostname, port: Number(parsed.port) },
    {
      ...(user === null ? {} : { auth: { user } }),
      ...(wire === "tcp+channel" ? { channel: true } : {}),
      ...rest,
    },
  );
}

/** A client and everything it heard, for assertions. */
export class TestClient {
  readonly conn: ClientConnection;
  readonly messages: unknown[] = [];
  readonly opens: ClientEvents["open"][] = [];
  readonly reconnects: ClientEvents["reconnecting"][] = [];
  closed: ClientEvents["closed"] | undefined;

  constructor(url: string, options: Parameters<typeof connectTo>[1] = {}) {
    this.conn = connectTo(url, {
      heartbeatMs: 1000,
      minDelayMs: 20,
      maxDelayMs: 200,
      ...options,
    });
    this.conn.on("message", (m) => this.messages.push(m));
    this.conn.on("open", (e) => this.opens.push(e));
    this.conn.on("reconnecting", (e) => this.reconnects.push(e));
    this.conn.on("closed", (e) => {
      this.closed = e;
    });
  }

  opened(n = 1, ms = 5000): Promise<ClientEvents["open"]> {
    return waitUntil(() => this.opens[n - 1], ms, `open #${n}`);
  }
}

/** Server-side record of every connection and the messages each got. */
export function recordConnections(live: LiveServer) {
  const seen: { conn: Connection; messages: unknown[]; closed?: string }[] = [];
  live.on("connection", (conn) => {
    const entry: (typeof seen)[number] = { conn, messages: [] };
    seen.push(entry);
    conn.on("message", (m) => entry.messages.push(m));
    conn.on("close", ({ reason }) => {
      entry.closed = reason;
    });
  });
  return seen;
}

export async function waitUntil<T>(
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  ms = 5000,
  what = "condition",
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// The heap a test can compare across work: live objects only, after full collections (the worker runs
// without --expose-gc, so the flag is set here and V8's gc taken from a fresh context).
setFlagsFromString("--expose-gc");
const collect = runInNewContext("gc") as () => void;

/** Bytes of heap still in use after garbage collection: what a leak would grow. */
export function retainedHeap(): number {
  collect();
  collect();
  return process.memoryUsage().heapUsed;
}
