import { type Meter, metrics, SpanKind, SpanStatusCode, type Tracer, trace } from "@opentelemetry/api";
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

/** Options for `instrumentSessions`. */
export interface OpenTelemetryOptions {
  /** Where spans go. @default trace.getTracer("stowage") */
  tracer?: Tracer;
  /** Where metrics go. @default metrics.getMeter("stowage") */
  meter?: Meter;
}

/** What `instrumentSessions` returns. */
export interface OpenTelemetryInstrumentation {
  /** Stops the spans and the metric callbacks. */
  stop(): void;
}

/**
 * A span per store call (`stowage.<operation>`, with the store's name and the error code on failure)
 * and the same figures as `stowage/prometheus` as OpenTelemetry metrics, through `@opentelemetry/api`:
 * a no-op until the application installs an OpenTelemetry SDK. See docs/operations.md.
 *
 * @example
 * instrumentSessions(sessions); // after the SDK is set up
 */
export function instrumentSessions(
  sessions: MeasuredSessions,
  options: OpenTelemetryOptions = {},
): OpenTelemetryInstrumentation {
  new OptionChecker("instrumentSessions", options, ["tracer", "meter"]);
  const tracer = options.tracer ?? trace.getTracer("stowage");
  const meter = options.meter ?? metrics.getMeter("stowage");
  const duration = meter.createHistogram("stowage.store.call.duration", {
    description: "Time of each store call, by operation and store.",
    unit: "s",
  });
  const failures = meter.createCounter("stowage.store.errors", {
    description: "Store calls that failed, by operation, store and error code.",
  });
  const counters = meter.createObservableCounter("stowage.sessions", {
    description: "The manager's counters (stats()), by event.",
  });
  const report = (result: { observe(value: number, attributes: Record<string, string>): void }) => {
    const stats = sessions.stats();
    for (const [event, value] of Object.entries(stats) as [keyof SessionStats, number][]) {
      result.observe(value, { event });
    }
  };
  counters.addCallback(report);
  const unobserve = observeStore(sessions.store, {
    start(operation, store) {
      const span = tracer.startSpan(`stowage.${operation}`, {
        kind: SpanKind.CLIENT,
        attributes: { "stowage.store": store, "stowage.operation": operation },
      });
      return (call) => {
        if (call.error !== undefined) {
          span.setAttribute("stowage.error", call.error);
          span.setStatus({ code: SpanStatusCode.ERROR, message: call.error });
        }
        span.end();
      };
    },
    done(call) {
      const attributes = { "stowage.operation": call.operation, "stowage.store": call.store };
      duration.record(call.seconds, attributes);
      if (call.error !== undefined) failures.add(1, { ...attributes, "stowage.error": call.error });
    },
  });
  return {
    stop() {
      unobserve();
      counters.removeCallback(report);
    },
  };
}
