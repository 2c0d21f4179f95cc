// A connection server in a process of its own, for takeover and restart tests. Arguments: store URL,
// scope (Redis prefix or PostgreSQL table, "-" for none), port (0: any), wire (ws, tcp, tcp+channel).
// The key ring comes from STOWAGE_TEST_KEY, so every process of a test opens the same sealed secrets.
// Prints one JSON line per event: listening, connection, close (with the reason and the time it happened).
import { createTcpConnectionServer } from "../../src/connections/tcp-server.js";
import { createConnectionServer } from "../../src/connections/ws.js";
import { createSessions, openStore } from "../../src/index.js";

const [url, scope, port, wire = "ws"] = process.argv.slice(2) as [string, string, string, string?];
const options = scope === "-" ? {} : url.startsWith("postgres") ? { table: scope } : { prefix: scope };
const key = process.env.STOWAGE_TEST_KEY;
const sessions = createSessions({
  store: await openStore(url, options),
  ...(key ? { keys: [{ id: "k1", key }] } : {}),
});
const common = { sessions, port: Number(port), heartbeatMs: 60_000 };
const live =
  wire === "ws"
    ? createConnectionServer(common)
    : createTcpConnectionServer({ ...common, channel: wire === "tcp+channel" });
const say = (event: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(event)}\n`);
live.on("connection", (conn) => {
  say({ event: "connection", id: conn.id, resumed: conn.resumed });
  conn.on("message", (value) => say({ event: "message", id: conn.id, value }));
  conn.on("close", ({ reason }) => say({ event: "close", id: conn.id, reason, at: Date.now() }));
});
await live.ready;
say({ event: "listening", port: live.address().port });
process.on("SIGTERM", () => {
  void live
    .close()
    .then(() => sessions.close())
    .then(() => process.exit(0));
});
