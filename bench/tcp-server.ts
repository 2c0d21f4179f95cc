// One TCP server in a process of its own, driven over IPC by bench/tcp.ts, so its CPU is its own.
// argv: kind (tls | channel | plain | net), key file, certificate file (tls only).
// Out first: { port }. In: { expectBytes: n } → { bytes, ms } once n bytes of payload arrived (from the
// first of them); { send: n } → server → client messages 1..n on the one connection; { cpu: true } → { cpu }.
import { readFileSync } from "node:fs";
import { type AddressInfo, createServer, type Server, type Socket } from "node:net";
import { createServer as createTlsServer } from "node:tls";
import { createSessions, KeyRing, MemoryStore } from "stowage";
import { type Connection, createTcpConnectionServer } from "stowage/tcp";
import { FrameDecoder } from "../src/connections/framing.js";

const [kind, keyFile, certFile] = process.argv.slice(2) as [string, string, string];
const send = (message: unknown) => process.send!(message);

let received = 0;
/** The TLS server cuts and parses frames (the same messages as stowage's) rather than counting bytes. */
let framed = false;
let expected = Number.POSITIVE_INFINITY;
let firstAt = 0;
const arrived = (bytes: number) => {
  if (received === 0) firstAt = performance.now();
  received += bytes;
  if (received >= expected) {
    send({ bytes: received, ms: performance.now() - firstAt });
    expected = Number.POSITIVE_INFINITY;
    received = 0;
  }
};

let sendAll: (n: number) => Promise<void> = async () => undefined;
let address: () => AddressInfo;

if (kind === "tls") {
  const server = createTlsServer(
    { key: readFileSync(keyFile), cert: readFileSync(certFile), minVersion: "TLSv1.3" },
    (socket) => {
      const decoder = new FrameDecoder(1 << 24);
      socket.on("data", (chunk: Buffer) => {
        if (!framed) return arrived(chunk.length);
        for (const body of decoder.push(chunk) ?? []) {
          arrived((JSON.parse(body.toString("utf8")) as { d: string }).d.length);
        }
      });
      socket.on("error", () => undefined);
    },
  );
  server.listen(0, "127.0.0.1", 4096, () => send({ port: (server.address() as AddressInfo).port }));
  address = () => server.address() as AddressInfo;
} else if (kind === "net") {
  // The same framing as stowage/tcp, in clear, with no session, sequence numbers kept by nobody.
  let socket: Socket | undefined;
  const server: Server = createServer({ noDelay: true }, (s) => {
    socket = s;
    s.on("error", () => undefined);
  });
  sendAll = async (n) => {
    for (let sent = 0; sent < n; sent += 256) {
      const batch = Math.min(256, n - sent);
      socket!.cork();
      for (let i = 1; i <= batch; i++) {
        const body = Buffer.from(`{"t":"m","s":${sent + i},"d":${JSON.stringify({ n: sent + i })}}`);
        const header = Buffer.allocUnsafe(4);
        header.writeUInt32BE(body.length, 0);
        socket!.write(header);
        socket!.write(body);
      }
      socket!.uncork();
      while (socket!.writableLength > 1 << 20) await new Promise((r) => setImmediate(r));
      await new Promise((r) => setImmediate(r));
    }
  };
  server.listen(0, "127.0.0.1", 4096, () => send({ port: (server.address() as AddressInfo).port }));
  address = () => server.address() as AddressInfo;
} else {
  const sessions = createSessions({
    store: new MemoryStore(),
    keys: [{ id: "bench", key: KeyRing.generateKey() }],
  });
  const live = createTcpConnectionServer({
    sessions,
    port: 0,
    heartbeatMs: 600_000,
    channel: kind === "channel",
    maxFrameBytes: 1 << 20,
  });
  const conns = new Set<Connection>();
  live.on("connection", (conn) => {
    conns.add(conn);
    conn.on("close", () => conns.delete(conn));
    conn.on("message", (value) => {
      if (typeof value === "string") arrived(value.length);
    });
  });
  sendAll = async (n) => {
    // Batches of 256 per turn: each batch is one outbox append.
    for (let sent = 0; sent < n; sent += 256) {
      const batch = Math.min(256, n - sent);
      let last: Promise<number> | undefined;
      for (const conn of conns) for (let i = 1; i <= batch; i++) last = conn.send({ n: sent + i });
      await last;
    }
  };
  await live.ready;
  address = () => live.address();
  send({ port: live.address().port });
}

process.on(
  "message",
  async (message: { expectBytes?: number; framed?: boolean; send?: number; cpu?: true }) => {
    if (message.cpu) {
      const { user, system } = process.cpuUsage();
      send({ cpu: (user + system) / 1000, port: address().port });
    } else if (message.expectBytes !== undefined) {
      received = 0;
      expected = message.expectBytes;
      framed = message.framed === true;
      send({ expecting: true });
    } else if (message.send !== undefined) {
      await sendAll(message.send);
      send({ queued: message.send });
    }
  },
);
