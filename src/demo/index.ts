import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Sessions } from "../core/manager.js";
import type { SessionStore } from "../core/store.js";
import { withSessions } from "../http/index.js";
import { createSessions } from "../index.js";
import type { Reply } from "./respond.js";
import { type DemoAttributes, demoRoutes } from "./routes.js";

export type { DemoAttributes } from "./routes.js";

/** Options for {@link startDemo}. */
export interface DemoOptions {
  /** Where sessions live; the demo closes it on `close()`. */
  store: SessionStore;
  /** TCP port; 0 picks a free one. @default 3000 */
  port?: number;
  /** Address to listen on. @default "127.0.0.1" */
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
 * Starts the demo web app: sign in by name, the current session, a counter kept in the session, and the
 * list of your devices with revoke.
 *
 * @example
 * const demo = await startDemo({ store: new SqliteStore({ path: "./data/sessions.db" }), port: 3000 });
 */
export async function startDemo(options: DemoOptions): Promise<Demo> {
  const sessions = createSessions<DemoAttributes>({ store: options.store });
  const server = createServer(
    withSessions(sessions, demoRoutes(sessions, { metrics: await metricsRoute(sessions) })),
  );
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port ?? 3000, options.host ?? "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (error) {
    await sessions.close();
    throw error;
  }
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    url: `http://localhost:${port}`,
    port,
    server,
    sessions,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }).then(() => sessions.close());
      return closing;
    },
  };
}
