import { createConnection as connectTcp, createServer, type Server, type Socket } from "node:net";
import WebSocket from "ws";
import { type ClientConnection, type ClientEvents, connect } from "../../src/client/index.js";
import type { Connection } from "../../src/connections/connection.js";
import {
  createConnectionServer,
  type WsConnectionOptions,
  type WsConnectionServer,
} from "../../src/connections/ws.js";
import type { Sessions } from "../../src/core/manager.js";
import type { SessionStore } from "../../src/core/store.js";
import { createSessions } from "../../src/index.js";

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

/** A manager and a connection server on a port of its own, on `store`. */
export async function startLive(
  store: SessionStore,
  options: Partial<WsConnectionOptions> = {},
  sessions: Sessions = createSessions({ store }),
): Promise<{ sessions: Sessions; live: WsConnectionServer; port: number; stop(): Promise<void> }> {
  const live = createConnectionServer({ sessions, port: 0, heartbeatMs: 1000, ...options });
  await live.ready;
  return {
    sessions,
    live,
    port: live.address().port,
    stop: () => live.close(),
  };
}

/** A client and everything it heard, for assertions. */
export class TestClient {
  readonly conn: ClientConnection;
  readonly messages: unknown[] = [];
  readonly opens: ClientEvents["open"][] = [];
  readonly reconnects: ClientEvents["reconnecting"][] = [];
  closed: ClientEvents["closed"] | undefined;

  constructor(url: string, options: Parameters<typeof connect>[1] = {}) {
    this.conn = connect(url, {
      WebSocket: WebSocket as never,
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
export function recordConnections(live: WsConnectionServer) {
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
