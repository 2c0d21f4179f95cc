// Clients in a process of their own for bench/connections.ts. argv: kind (stowage | ws | socketio), url,
// connections. Out: { open } once all are connected, { received, ms } once `expect` messages arrived (after
// { expect: n }); for a storm ({ storm: true }, stowage only): { armed } once it listens, then, after the
// server has dropped every connection, { resumed, ms, p50, p99, cpuMs }.
import { io } from "socket.io-client";
import { type ClientConnection, connect } from "stowage/client";
import WebSocket from "ws";

const [kind, url, many] = process.argv.slice(2) as [string, string, string];
const total = Number(many);
const send = (message: unknown) => process.send!(message);
let received = 0;
let expected = Number.POSITIVE_INFINITY;
let startedAt = 0;
const onMessage = () => {
  if (++received === expected) send({ received, ms: performance.now() - startedAt });
};

const via = url;

const clients: ClientConnection[] = [];
const raw: WebSocket[] = [];
let open = 0;
const opened = () => {
  if (++open === total) send({ open });
};
for (let i = 0; i < total; i++) {
  if (kind === "stowage") {
    // The client's own backoff (full jitter, first ceiling 250 ms): a storm spreads as it would in the field.
    const conn = connect(via, { WebSocket: WebSocket as never, heartbeatMs: 600_000 });
    conn.on("message", onMessage);
    let first = true;
    conn.on("open", () => {
      if (first) opened();
      first = false;
    });
    clients.push(conn);
  } else if (kind === "ws") {
    const ws = new WebSocket(via, { perMessageDeflate: false });
    ws.on("open", opened);
    ws.on("message", onMessage);
    raw.push(ws);
  } else {
    const socket = io(via.replace(/\/live$/, ""), { transports: ["websocket"], reconnectionDelay: 1 });
    socket.once("connect", opened);
    socket.on("m", onMessage);
  }
  // Connect in waves, so the server's accept queue never overflows.
  if (i % 200 === 199) await new Promise((r) => setTimeout(r, 20));
}

process.on("message", (message: { expect?: number; storm?: true }) => {
  if (message.expect !== undefined) {
    received = 0;
    expected = message.expect;
    startedAt = performance.now();
  } else if (message.storm && kind === "ws") {
    // The transport's own limit: every socket reconnects at once, plain WebSocket, no session.
    const latencies: number[] = [];
    let back = 0;
    const started = performance.now();
    for (const ws of raw) {
      ws.once("close", () => {
        const dialAt = performance.now();
        const again = new WebSocket(via, { perMessageDeflate: false });
        again.on("error", () => undefined);
        again.once("open", () => {
          latencies.push(performance.now() - dialAt);
          if (++back === total) {
            latencies.sort((a, b) => a - b);
            const at = (q: number) =>
              latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!;
            send({ resumed: back, ms: performance.now() - started, p50: at(0.5), p99: at(0.99) });
          }
        });
      });
    }
    send({ armed: true });
  } else if (message.storm) {
    const latencies: number[] = [];
    let resumed = 0;
    const started = performance.now();
    const cpuBefore = process.cpuUsage();
    for (const conn of clients) {
      let dialAt = 0;
      const offReconnecting = conn.on("reconnecting", ({ delayMs }) => {
        dialAt = performance.now() + delayMs;
      });
      const offOpen = conn.on("open", ({ resumed: again }) => {
        if (!again) return;
        latencies.push(performance.now() - dialAt);
        offOpen();
        offReconnecting();
        if (++resumed === total) {
          latencies.sort((a, b) => a - b);
          const at = (q: number) =>
            latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!;
          const cpu = process.cpuUsage(cpuBefore);
          const cpuMs = (cpu.user + cpu.system) / 1000;
          send({ resumed, ms: performance.now() - started, p50: at(0.5), p99: at(0.99), cpuMs });
        }
      });
    }
    send({ armed: true });
  }
});
