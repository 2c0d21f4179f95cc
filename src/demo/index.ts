import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Sessions } from "../core/manager.js";
import type { SessionStore } from "../core/store.js";
import { withSessions } from "../http/index.js";
import { createSessions } from "../index.js";
import { attachLive } from "./live.js";
import type { Reply } from "./respond.js";
import { type DemoAttributes, demoRoutes } from "./routes.js";

export type { DemoAttributes } from "./routes.js";

/** Options for {@link startDemo}. */
export interface DemoOptions {
  /** Where sessions live; the demo closes it on `close()`. */
  store: SessionStore;
  /** TCP port; 0 picks a free one. @default 3000 */
  port?: number;
  /**
   * Address to listen on. The default, "localhost", listens on both 127.0.0.1 and ::1 (where the machine
   * has IPv6), so `http://localhost:PORT` works whichever of the two a browser tries first.
   * @default "localhost"
   */
  host?: string;
}

/** A running demo server. */
export interface Demo {
  /** Base URL, e.g. `http://localhost:3000`. */
  readonly url: string;
  /** The port it listens on. */
  readonly port: number;
  /** The node:http server. */
  readonly server: Server;
  /** The session manager behind the pages. */
  readonly sessions: Sessions<DemoAttributes>;
  /** Stops the server and closes the store. */
  close(): Promise<void>;
}

/**
 * GET /metrics in Prometheus's text format, when prom-client (an optional peer) is installed; without it
 * the demo has no /metrics page.
 */
async function metricsRoute(sessions: Sessions<DemoAttributes>): Promise<(() => Promise<Reply>) | undefined> {
  let loaded: [typeof import("prom-client"), typeof import("../metrics/prometheus.js")];
  try {
    loaded = await Promise.all([import("prom-client"), import("../metrics/prometheus.js")]);
  } catch {
    return undefined;
  }
  const [{ Registry }, { collectMetrics }] = loaded;
  const registry = new Registry();
  collectMetrics(sessions, { registry });
  return async () => ({
    status: 200,
    body: await registry.metrics(),
    headers: { "Content-Type": registry.contentType, "Cache-Control": "no-store" },
  });
}

/**
 * Starts the demo web app: sign in by name, the current session, a counter kept in the session, the
 * list of your devices with revoke, and a live panel (a resumable WebSocket at /live) that shows the
 * counter as other devices change it and survives dropped networks and server restarts.
 *
 * @example
 * const demo = await startDemo({ store: new SqliteStore({ path: "./data/sessions.db" }), port: 3000 });
 */
export async function startDemo(options: DemoOptions): Promise<Demo> {
  const sessions = createSessions<DemoAttributes>({ store: options.store });
  const server = createServer();
  const { live, hooks } = attachLive(sessions, server);
  const handler = withSessions(
    sessions,
    demoRoutes(sessions, { metrics: await metricsRoute(sessions), live: hooks }),
  );
  server.on("request", handler);
  const host = options.host ?? "localhost";
  const extra: Server[] = [];
  try {
    await listen(server, options.port ?? 3000, host === "localhost" ? "127.0.0.1" : host);
    if (host === "localhost") {
      // The same port on IPv6 loopback too, where the machine has one.
      const v6 = createServer(handler);
      // Its WebSocket upgrades go to the same live endpoint.
      v6.on("upgrade", (...args) => server.emit("upgrade", ...args));
      await listen(v6, (server.address() as AddressInfo).port, "::1").then(
        () => extra.push(v6),
        () => undefined,
      );
    }
  } catch (error) {
    await live.close();
    await sessions.close();
    throw error;
  }
  const port = (server.address() as AddressInfo).port;
  const shown = host.includes(":") ? `[${host}]` : host;
  let closing: Promise<void> | undefined;
  const stop = (s: Server) =>
    new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  return {
    url: `http://${shown}:${port}`,
    port,
    server,
    sessions,
    close() {
      closing ??= live
        .close()
        .then(() => Promise.all([server, ...extra].map(stop)))
        .then(() => sessions.close());
      return closing;
    },
  };
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
}
