import type { FastifyPluginCallback, FastifyRequest } from "fastify";
import type { Sessions } from "../core/manager.js";
import type { Attributes } from "../core/record.js";
import { Carriage, type HttpSessionOptions } from "./carriage.js";
import { commitSession, isUnavailable, type LazySession, openSession, UNAVAILABLE_BODY } from "./core.js";
import type { RegisteredAttributes } from "./index.js";

export type { HttpSessionOptions as FastifySessionOptions } from "./carriage.js";
export { LazySession } from "./core.js";
export { requireCsrf } from "./csrf.js";
export type { Register, RegisteredAttributes } from "./index.js";
export type { LegacySessionData, LegacyStore, MigrateOptions } from "./migrate.js";

declare module "fastify" {
  interface FastifyRequest {
    /** The request's lazy session (stowage), typed by the registered manager (`Register` in stowage/http). */
    session: LazySession<RegisteredAttributes>;
  }
}

/**
 * A fastify plugin that decorates `request.session` with a lazy session and commits it in an onSend
 * hook, before the headers go out. It applies to the instance it is registered on (no encapsulation, as
 * fastify-plugin would do, without depending on it). A store outage becomes a 503. Routes that hijack
 * the reply skip onSend, so their session changes need `await (await request.session).save()`.
 *
 * @example
 * const app = Fastify();
 * await app.register(sessionPlugin(sessions));
 * app.post("/visit", async (request) => {
 *   const session = await request.session;
 *   session.set("visits", (session.get("visits") ?? 0) + 1);
 *   return { visits: session.get("visits") };
 * });
 */
export function sessionPlugin<A extends object = Attributes>(
  sessions: Sessions<A>,
  options: HttpSessionOptions = {},
): FastifyPluginCallback {
  const carriage = new Carriage(options);
  // fastify's own answer: a TLS socket, or X-Forwarded-Proto from a proxy its `trustProxy` trusts.
  const secureOf = (request: FastifyRequest): boolean =>
    carriage.isSecure(request.protocol === "https", single(request.raw.headers["x-forwarded-proto"]));
  // Requests whose handler failed: their error reply is sent without a commit.
  const failed = new WeakSet<FastifyRequest>();

  const plugin: FastifyPluginCallback = (app, _options, done) => {
    app.decorateRequest("session", null as unknown as LazySession<RegisteredAttributes>);
    app.addHook("onRequest", (request, _reply, next) => {
      const raw = request.raw;
      const header = carriage.header === undefined ? undefined : raw.headers[carriage.header];
      const lazy = openSession(sessions, carriage, {
        cookie: raw.headers.cookie,
        header: single(header),
        secure: secureOf(request),
        connection: raw.socket,
      });
      request.session = lazy as unknown as LazySession<RegisteredAttributes>;
      next();
    });
    app.addHook("onError", (request, reply, error, next) => {
      failed.add(request);
      // Fastify's error handlers keep a status set here; a store outage answers 503, not 500.
      if (isUnavailable(error)) reply.code(503);
      next();
    });
    app.addHook("onSend", async (request, reply, payload) => {
      if (failed.has(request) || request.session === null) return payload;
      try {
        const lazy = request.session as unknown as LazySession<A>;
        const cookie = await commitSession(sessions, lazy, carriage, {
          secure: secureOf(request),
          rotate: true,
        });
        if (cookie !== undefined) reply.header("set-cookie", cookie);
        return payload;
      } catch (error) {
        if (!isUnavailable(error)) throw error;
        reply
          .code(503)
          .header("content-type", "text/plain; charset=utf-8")
          .header("cache-control", "no-store");
        return UNAVAILABLE_BODY;
      }
    });
    done();
  };
  // What fastify-plugin sets: skip-override shares the decoration and hooks with the parent instance.
  Object.assign(plugin, {
    [Symbol.for("skip-override")]: true,
    [Symbol.for("fastify.display-name")]: "stowage",
  });
  return plugin;
}

/** The request's lazy session, typed with your attributes. */
export function sessionOf<A extends object = RegisteredAttributes>(request: FastifyRequest): LazySession<A> {
  return request.session as unknown as LazySession<A>;
}

function single(value: string | string[] | undefined): string | undefined {
  return typeof value === "string" ? value : undefined;
}
