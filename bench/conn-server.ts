// One connection server in a process of its own, driven over IPC by bench/connections.ts, so its RSS and
// CPU are its own. argv: kind (stowage-memory | stowage-redis | ws | socketio), Redis URL.
// Messages in: { rss: true } → { rss }; { send: perConnection } → { sent, ms }. Out first: { port }.
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { type Socket, Server as SocketIoServer } from "socket.io";
import { createSessions, MemoryStore, type SessionStore } from "stowage";
import { RedisStore } from "stowage/redis";
import { type Connection, createConnectionServer } from "stowage/ws";
import { type WebSocket, WebSocketServer } from "ws";

const [kind, redisUrl] = process.argv.slice(2) as [string, string];
const send = (message: unknown) => process.send!(message);
const gc = (globalThis as { gc?: () => void }).gc!;
const http = createServer();

let sendAll: (perConnection: number) => Promise<void>;
let count: () => number;

if (kind.startsWith("stowage")) {
  const store: SessionStore =
    kind === "stowage-redis"
      ? new RedisStore({ url: redisUrl, prefix: `bench-conn-${randomBytes(4).toString("hex")}:` })
      : new MemoryStore();
  const sessions = createSessions({ store });
  const live = createConnectionServer({ sessions, server: http, path: "/live", heartbeatMs: 60_000 });
  const conns = new Set<Connection>();
  live.on("connection", (conn) => {
    conns.add(conn);
    conn.on("close", () => conns.delete(conn));
  });
  count = () => conns.size;
  sendAll = async (per) => {
    // Batches of 256 per turn: each batch is one outbox append per connection.
    for (let sent = 0; sent < per; sent += 256) {
      const n = Math.min(256, per - sent);
      const last: Promise<number>[] = [];
      for (const conn of conns) {
        let p: Promise<number> | undefined;
        for (let i = 0; i < n; i++) p = conn.send({ n: sent + i + 1 });
        last.push(p!);
      }
      await Promise.all(last);
    }
  };
} else if (kind === "ws") {
  const wss = new WebSocketServer({ server: http, path: "/live", perMessageDeflate: false });
  const sockets = new Set<WebSocket>();
  wss.on("connection", (ws) => {
    sockets.add(ws);
    ws.on("close", () => sockets.delete(ws));
  });
  count = () => sockets.size;
  sendAll = async (per) => {
    for (let sent = 0; sent < per; sent += 256) {
      const n = Math.min(256, per - sent);
      for (const ws of sockets) for (let i = 0; i < n; i++) ws.send(JSON.stringify({ n: sent + i + 1 }));
      // Wait for the kernel to take what is queued, as a server under backpressure would.
      while ([...sockets].some((ws) => ws.bufferedAmount > 1 << 20))
        await new Promise((r) => setImmediate(r));
      await new Promise((r) => setImmediate(r));
    }
  };
} else {
  const io = new SocketIoServer(http, {
    transports: ["websocket"],
    connectionStateRecovery: { maxDisconnectionDuration: 120_000 },
    perMessageDeflate: false,
  });
  const sockets = new Set<Socket>();
  io.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("disconnect", () => sockets.delete(socket));
  });
  count = () => sockets.size;
  sendAll = async (per) => {
    for (let sent = 0; sent < per; sent += 256) {
      const n = Math.min(256, per - sent);
      for (const socket of sockets) for (let i = 0; i < n; i++) socket.emit("m", { n: sent + i + 1 });
      await new Promise((r) => setImmediate(r));
    }
  };
}

// Every upgraded socket, so a storm can drop them all at once from this end.
const upgraded = new Set<import("node:stream").Duplex>();
http.prependListener("upgrade", (_request, socket) => {
  upgraded.add(socket);
  socket.once("close", () => upgraded.delete(socket));
});

http.listen(0, "127.0.0.1", 4096, () => send({ port: (http.address() as AddressInfo).port }));
process.on(
  "message",
  async (message: { rss?: true; send?: number; count?: true; cpu?: true; drop?: true }) => {
    if (message.drop) {
      for (const socket of upgraded) socket.destroy();
      send({ dropped: true });
    } else if (message.cpu) {
      const { user, system } = process.cpuUsage();
      send({ cpu: (user + system) / 1000 });
    } else if (message.rss) {
      gc();
      gc();
      await new Promise((r) => setTimeout(r, 200));
      gc();
      send({
        rss: process.memoryUsage().rss,
        heap: process.memoryUsage().heapUsed,
        external: process.memoryUsage().external,
        connections: count(),
      });
    } else if (message.count) {
      send({ connections: count() });
    } else if (message.send !== undefined) {
      const started = performance.now();
      await sendAll(message.send);
      send({ sent: count() * message.send, ms: performance.now() - started });
    }
  },
);
