import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from "@opentelemetry/sdk-metrics";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import parse from "parse-prometheus-text-format";
import { Registry } from "prom-client";
import { afterAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { connect } from "../src/client/index.js";
import { createConnectionServer } from "../src/connections/ws.js";
import { issueToken } from "../src/core/tokens.js";
import { createSessions, MemoryStore, type Sessions } from "../src/index.js";
import { instrumentSessions } from "../src/metrics/opentelemetry.js";
import { collectMetrics } from "../src/metrics/prometheus.js";
import { SqliteStore } from "../src/stores/sqlite/index.js";

const dir = mkdtempSync(join(tmpdir(), "stowage-metrics-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A scripted run whose every outcome is known: 3 created, 2 loaded, 1 forged, 1 malformed, 1 unknown, 1 expired. */
async function scriptedRun(sessions: Sessions<Record<string, number>>, clock: { at: number }) {
  const made = [];
  for (let i = 0; i < 3; i++) {
    const session = sessions.create();
    session.set("i", i);
    await session.save();
    made.push(session);
  }
  await sessions.load(made[0]!.token);
  await sessions.load(made[1]!.token);
  await sessions.load(`${made[0]!.id}.${issueToken().token.slice(23)}`);
  await sessions.load("not a token");
  await sessions.load(issueToken().token);
  clock.at += 31 * 60_000;
  await sessions.load(made[2]!.token);
}

describe("stowage/prometheus", () => {
  it("exposes what a scripted run did, parsed by a real Prometheus text parser", async () => {
    const clock = { at: Date.now() };
    const sessions = createSessions<Record<string, number>>({
      store: new SqliteStore({ path: join(dir, "p.db") }),
      clock: { now: () => clock.at },
    });
    const registry = new Registry();
    const metrics = collectMetrics(sessions, { registry });
    await scriptedRun(sessions, clock);
    const broken = new MemoryStore();
    await broken.close();
    const failing = createSessions({ store: broken });
    const other = new Registry();
    collectMetrics(failing, { registry: other, prefix: "down_" });
    await failing.load(issueToken().token).catch(() => undefined);

    const families = parse(await registry.metrics());
    const value = (name: string) => Number(families.find((f) => f.name === name)?.metrics[0]?.value);
    expect(value("stowage_sessions_created_total")).toBe(3);
    expect(value("stowage_sessions_loaded_total")).toBe(2);
    expect(value("stowage_sessions_forged_total")).toBe(1);
    expect(value("stowage_sessions_malformed_total")).toBe(1);
    expect(value("stowage_sessions_unknown_total")).toBe(1);
    expect(value("stowage_sessions_expired_total")).toBe(1);
    const latency = families.find((f) => f.name === "stowage_store_call_duration_seconds");
    expect(latency?.type).toBe("HISTOGRAM");
    const text = await registry.metrics();
    const inserts =
      /stowage_store_call_duration_seconds_count\{operation="insert",store="sqlite"\} (\d+)/.exec(text);
    expect(Number(inserts?.[1])).toBe(3);
    const reads = /stowage_store_call_duration_seconds_count\{operation="get",store="sqlite"\} (\d+)/.exec(
      text,
    );
    expect(Number(reads?.[1])).toBe(5); // every load but the malformed one reads the store
    // Scraped twice, a counter does not count twice.
    expect(
      Number(
        parse(await registry.metrics()).find((f) => f.name === "stowage_sessions_created_total")?.metrics[0]
          ?.value,
      ),
    ).toBe(3);

    const failures = parse(await other.metrics()).find((f) => f.name === "down_store_errors_total");
    expect(failures?.metrics).toEqual([
      { value: "1", labels: { operation: "peek", store: "memory", code: "STORE_UNAVAILABLE" } },
    ]);
    metrics.stop();
    expect(await registry.metrics()).not.toContain("stowage_");
    await sessions.close();
  });

  it("a connection server's connections: open, handshaking, opened by kind, closed and rejected by reason", async () => {
    const store = new MemoryStore();
    const sessions = createSessions({ store });
    const live = createConnectionServer({
      sessions,
      port: 0,
      authenticate: (req) => (req.url?.includes("no") ? null : {}),
    });
    await live.ready;
    const registry = new Registry();
    const metrics = collectMetrics(sessions, { registry, connections: live });
    const url = `ws://127.0.0.1:${live.address().port}/live`;
    const opens: string[] = [];
    const client = connect(url, { WebSocket: WebSocket as never, minDelayMs: 10, maxDelayMs: 20 });
    client.on("open", ({ resumed }) => opens.push(resumed ? "resumed" : "new"));
    await expect.poll(() => opens.length).toBe(1);
    const refused = connect(`${url}?no`, { WebSocket: WebSocket as never });
    await expect.poll(() => refused.state).toBe("closed");
    // The server closes it (closed: retryable); the client resumes.
    live.connections.get(client.id!)!.close();
    await expect.poll(() => opens.length).toBe(2);
    const value = async (name: string, labels: Record<string, string> = {}) => {
      const family = parse(await registry.metrics()).find((f) => f.name === name);
      const metric = family?.metrics.find((m) =>
        Object.entries(labels).every(([k, v]) => (m.labels as Record<string, string> | undefined)?.[k] === v),
      );
      return metric?.value;
    };
    expect(await value("stowage_connections_open")).toBe("1");
    expect(await value("stowage_connections_handshaking")).toBe("0");
    expect(await value("stowage_connections_opened_total", { kind: "new" })).toBe("1");
    expect(await value("stowage_connections_opened_total", { kind: "resumed" })).toBe("1");
    expect(await value("stowage_connections_closed_total", { reason: "closed" })).toBe("1");
    expect(await value("stowage_connections_rejected_total", { reason: "refused" })).toBe("1");
    expect(() => collectMetrics(sessions, { registry: new Registry(), connections: {} as never })).toThrow(
      /connections must be a connection server/,
    );
    client.close();
    metrics.stop();
    await live.close();
    await sessions.close();
  });

  it("a MemoryStore's live records are a gauge", async () => {
    const store = new MemoryStore();
    const sessions = createSessions({ store });
    const registry = new Registry();
    collectMetrics(sessions, { registry });
    for (let i = 0; i < 4; i++) await sessions.create({ attributes: { i } }).save();
    const gauge = parse(await registry.metrics()).find((f) => f.name === "stowage_sessions_stored");
    expect(gauge?.metrics[0]?.value).toBe("4");
    await sessions.close();
  });
});

describe("stowage/opentelemetry", () => {
  it("a span per store call and the metrics reach an in-memory exporter", async () => {
    const spans = new InMemorySpanExporter();
    const tracer = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }).getTracer(
      "test",
    );
    const exported = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter: exported, exportIntervalMillis: 60_000 });
    const meterProvider = new MeterProvider({ readers: [reader] });
    const clock = { at: Date.now() };
    const sessions = createSessions<Record<string, number>>({
      store: new SqliteStore({ path: join(dir, "o.db") }),
      clock: { now: () => clock.at },
    });
    const otel = instrumentSessions(sessions, { tracer, meter: meterProvider.getMeter("test") });
    await scriptedRun(sessions, clock);
    const names = spans.getFinishedSpans().map((s) => s.name);
    expect(names.filter((n) => n === "stowage.insert")).toHaveLength(3);
    expect(names.filter((n) => n === "stowage.get")).toHaveLength(5);
    expect(spans.getFinishedSpans()[0]!.attributes["stowage.store"]).toBe("sqlite");
    await reader.forceFlush();
    const metricNames = exported
      .getMetrics()
      .flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics.map((m) => m.descriptor.name)));
    expect(metricNames).toContain("stowage.store.call.duration");
    expect(metricNames).toContain("stowage.sessions");
    otel.stop();
    await meterProvider.shutdown();
    await sessions.close();
  });
});
