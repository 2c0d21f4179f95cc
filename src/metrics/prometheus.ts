import { Counter, register as defaultRegistry, Gauge, Histogram, type Registry } from "prom-client";
import { OptionChecker } from "../core/options.js";
import type { SessionStats } from "../core/stats.js";
import type { SessionStore } from "../core/store.js";
import { observeStore } from "./observe.js";

/** What is measured: a manager (`createSessions()`), of any attribute type. */
export interface MeasuredSessions {
  /** The manager's counters. */
  stats(): SessionStats;
  /** Its store. */
  readonly store: SessionStore;
}

export type { StoreCall } from "./observe.js";

/** What is measured of a connection server (stowage/ws's `createConnectionServer()` or stowage/tcp's `createTcpConnectionServer()`). */
export interface MeasuredConnections {
  /** Connections open in this process. */
  readonly connections: ReadonlyMap<string, unknown>;
  /** Handshakes under way (new connections and resumes). */
  readonly handshakes: number;
  /** Its events (`connection` and `rejected`); returns a function that removes the listener. */
  on(
    event: "connection",
    listener: (connection: {
      readonly resumed: boolean;
      on(event: "close", listener: (payload: { reason: string }) => void): unknown;
    }) => void,
  ): () => void;
  on(event: "rejected", listener: (payload: { reason: string }) => void): () => void;
}

/** Options for `collectMetrics`. */
export interface PrometheusOptions {
  /** The prom-client registry to register in. @default prom-client's global registry */
  registry?: Registry;
  /** Prefix of every metric name. @default "stowage_" */
  prefix?: string;
  /** Buckets of the store call latency histogram, in seconds. @default 0.0001 to 2.5 */
  buckets?: number[];
  /** A connection server whose connections to measure too (open, handshaking, opened, closed, rejected). */
  connections?: MeasuredConnections;
}

/** What `collectMetrics` returns: stop it to unregister the metrics and stop observing the store. */
export interface PrometheusMetrics {
  /** Unregisters the metrics and stops observing the store. */
  stop(): void;
}

const COUNTERS: Record<keyof SessionStats, string> = {
  created: "sessions written for the first time",
  loaded: "tokens that loaded a live session",
  malformed: "tokens that were not shaped like a token",
  unknown: "well-formed tokens whose id names no session",
  forged: "tokens whose id exists but whose secret is wrong",
  expired: "tokens of a session past its expiry",
  ended: "sessions ended here",
  regenerated: "ids regenerated (login, logout, rotation, explicit)",
  conflicts: "commits and updates that met a version conflict and retried",
};

const BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/**
 * Exposes a manager's counters, its store's call latency and errors, and (where the store can count
 * them cheaply) its live sessions as prom-client metrics. See docs/operations.md for each metric.
 *
 * @example
 * const registry = new Registry();
 * collectMetrics(sessions, { registry });
 * app.get("/metrics", async (_req, res) => res.type(registry.contentType).send(await registry.metrics()));
 */
export function collectMetrics(
  sessions: MeasuredSessions,
  options: PrometheusOptions = {},
): PrometheusMetrics {
  const check = new OptionChecker("collectMetrics", options, [
    "registry",
    "prefix",
    "buckets",
    "connections",
  ]);
  const registry = options.registry ?? defaultRegistry;
  const prefix = check.text("prefix", "stowage_");
  if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(prefix))
    throw check.error("prefix must be a Prometheus metric name prefix");
  const registers = [registry];
  const made: string[] = [];
  const name = (n: string) => {
    made.push(prefix + n);
    return prefix + n;
  };
  for (const [stat, help] of Object.entries(COUNTERS) as [keyof SessionStats, string][]) {
    let reported = 0;
    new Counter({
      name: name(`sessions_${stat}_total`),
      help: `Sessions: ${help}.`,
      registers,
      // Read from stats() at scrape time: the counter moves by what the manager counted since.
      collect() {
        const now = sessions.stats()[stat];
        if (now > reported) this.inc(now - reported);
        reported = now;
      },
    });
  }
  const store = sessions.store;
  const size = (store as { size?: unknown }).size;
  if (typeof size === "number") {
    new Gauge({
      name: name("sessions_stored"),
      help: "Records the store holds now (expired ones not yet removed included).",
      registers,
      collect() {
        this.set((store as unknown as { size: number }).size);
      },
    });
  }
  const latency = new Histogram({
    name: name("store_call_duration_seconds"),
    help: "Time of each store call, by operation and store.",
    labelNames: ["operation", "store"],
    buckets: options.buckets ?? BUCKETS,
    registers,
  });
  const errors = new Counter({
    name: name("store_errors_total"),
    help: "Store calls that failed, by operation, store and error code.",
    labelNames: ["operation", "store", "code"],
    registers,
  });
  const unobserve = observeStore(store, {
    done(call) {
      latency.observe({ operation: call.operation, store: call.store }, call.seconds);
      if (call.error !== undefined)
        errors.inc({ operation: call.operation, store: call.store, code: call.error });
    },
  });
  const unlisten: (() => void)[] = [];
  const live = options.connections;
  if (live !== undefined) {
    if (typeof live?.on !== "function" || !(live.connections instanceof Map))
      throw check.error(
        "connections must be a connection server (createConnectionServer from stowage/ws, createTcpConnectionServer from stowage/tcp)",
      );
    new Gauge({
      name: name("connections_open"),
      help: "Connections open in this process.",
      registers,
      collect() {
        this.set(live.connections.size);
      },
    });
    new Gauge({
      name: name("connections_handshaking"),
      help: "Handshakes under way: new connections and resumes not yet answered.",
      registers,
      collect() {
        this.set(live.handshakes);
      },
    });
    const opened = new Counter({
      name: name("connections_opened_total"),
      help: "Connections opened, by kind: new, or resumed.",
      labelNames: ["kind"],
      registers,
    });
    const closed = new Counter({
      name: name("connections_closed_total"),
      help: "Connections closed, by reason (lost, closed, replaced, revoked, expired, malformed, unavailable).",
      labelNames: ["reason"],
      registers,
    });
    const rejected = new Counter({
      name: name("connections_rejected_total"),
      help: "Handshakes refused, by reason (expired, bad-proof, malformed, unavailable, refused, limit, closed).",
      labelNames: ["reason"],
      registers,
    });
    unlisten.push(
      live.on("connection", (connection) => {
        opened.inc({ kind: connection.resumed ? "resumed" : "new" });
        connection.on("close", ({ reason }) => closed.inc({ reason }));
      }),
      live.on("rejected", ({ reason }) => rejected.inc({ reason })),
    );
  }
  return {
    stop() {
      for (const off of unlisten) off();
      unobserve();
      for (const metric of made) registry.removeSingleMetric(metric);
    },
  };
}
