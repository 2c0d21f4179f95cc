import { createServer, type IncomingMessage, type RequestListener, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { getRequestListener } from "@hono/node-server";
import express from "express";
import express4 from "express4";
import Fastify from "fastify";
import { Hono } from "hono";
import type { Sessions } from "../../src/core/manager.js";
import type { Attributes } from "../../src/core/record.js";
import { sessionMiddleware as expressSessions, sessionOf } from "../../src/http/express.js";
import { sessionPlugin } from "../../src/http/fastify.js";
import { sessionMiddleware as honoSessions, type SessionVariables } from "../../src/http/hono.js";
import {
  type HttpSessionOptions,
  handleFetch,
  type LazySession,
  requireCsrf,
  withSessions,
} from "../../src/http/index.js";

/** The ways into the HTTP layer that the matrix runs against (express 4 and 5 both: the peer range is >= 4). */
export const DOORS = ["node", "fetch", "express", "express4", "fastify", "hono"] as const;
export type Door = (typeof DOORS)[number];

/** A running front door on a loopback port. */
export interface RunningDoor {
  url: string;
  close(): Promise<void>;
}

interface Reply {
  status: number;
  body: unknown;
}

type Headers = Readonly<Record<string, string | string[] | undefined>> | globalThis.Headers;

/**
 * The routes every front door serves, written once. GET /peek never touches the session; the others
 * await it. Bodies are JSON.
 */
async function route(
  method: string,
  url: string,
  headers: Headers,
  lazy: LazySession<Attributes>,
): Promise<Reply> {
  const { pathname, searchParams } = new URL(url, "http://x");
  const query = (name: string) => searchParams.get(name) ?? "";
  if (pathname === "/peek") return { status: 200, body: { ok: true } };
  if (pathname === "/csrf-protected") {
    const ok = await requireCsrf({ method, headers }, lazy);
    return ok ? { status: 200, body: { ok: true } } : { status: 403, body: { ok: false } };
  }
  const session = await lazy;
  switch (`${method} ${pathname}`) {
    case "GET /whoami":
      return {
        status: 200,
        body: {
          user: session.userId ?? null,
          attributes: Object.fromEntries(session.keys().map((k) => [k, session.get(k)])),
        },
      };
    case "GET /csrf":
      return { status: 200, body: { csrf: session.csrfToken } };
    case "POST /set":
      session.set(query("key"), query("value"));
      return { status: 200, body: { ok: true } };
    case "POST /incr":
      return {
        status: 200,
        body: { n: await session.update("n", (n) => (typeof n === "number" ? n : 0) + 1) },
      };
    case "POST /login": {
      // remember=N: a "remember me" sign-in, the session living N days whatever its idleness.
      const days = Number(query("remember"));
      session.login(query("user"), days > 0 ? { lifetime: days * 86_400_000 } : {});
      return { status: 200, body: { ok: true } };
    }
    case "POST /logout":
      session.logout();
      return { status: 200, body: { ok: true } };
    case "POST /end":
      session.end();
      return { status: 200, body: { ok: true } };
    default:
      return { status: 404, body: { error: "not found" } };
  }
}

/** Starts one front door over `sessions` on 127.0.0.1. */
export async function startDoor(
  door: Door,
  sessions: Sessions<Attributes>,
  options: HttpSessionOptions & { onError?: (error: unknown) => void } = {},
): Promise<RunningDoor> {
  // onError is an option of node:http and express only; the other doors refuse it as unknown.
  const { onError, ...http } = options;
  const nodeOptions = onError === undefined ? http : { ...http, onError };
  if (door === "fastify") return startFastify(sessions, http);
  if (door === "node" || door === "express" || door === "express4") {
    return listen(createServer(listener(door, sessions, nodeOptions)));
  }
  return listen(createServer(listener(door, sessions, http)));
}

function listener(
  door: Exclude<Door, "fastify">,
  sessions: Sessions<Attributes>,
  options: HttpSessionOptions & { onError?: (error: unknown) => void },
): RequestListener {
  switch (door) {
    case "node":
      return withSessions(
        sessions,
        async (req, res, lazy) => {
          const reply = await route(req.method ?? "GET", req.url ?? "/", req.headers, lazy);
          res.statusCode = reply.status;
          res.setHeader("content-type", "application/json");
          res.end(JSON.stringify(reply.body));
        },
        { onError: () => {}, ...options },
      );
    case "fetch":
      return getRequestListener(
        handleFetch(
          sessions,
          async (request, lazy) => {
            const reply = await route(request.method, request.url, request.headers, lazy);
            return Response.json(reply.body, { status: reply.status });
          },
          options,
        ),
      );
    case "express":
    case "express4": {
      const app = door === "express" ? express() : express4();
      app.use(expressSessions(sessions, { onError: () => {}, ...options }));
      app.use((req, res, next) => {
        route(req.method, req.url, req.headers, sessionOf(req)).then(
          (reply) => res.status(reply.status).json(reply.body),
          next,
        );
      });
      // Silence express's default error logging; the status it picks is what the tests look at.
      app.use(
        (
          error: { status?: number },
          _req: IncomingMessage,
          res: express.Response,
          _next: express.NextFunction,
        ) => {
          res
            .status(typeof error.status === "number" ? error.status : 500)
            .type("text/plain")
            .send("error");
        },
      );
      return app;
    }
    case "hono": {
      const app = new Hono<{ Variables: SessionVariables }>();
      app.use(honoSessions(sessions, options));
      // Hono's default error handler logs to stderr; the status is what the tests look at.
      app.onError((_error, c) => c.text("error", 500));
      app.all("*", async (c) => {
        const reply = await route(c.req.method, c.req.url, c.req.raw.headers, c.get("session"));
        return c.json(reply.body, reply.status as 200);
      });
      return getRequestListener(app.fetch);
    }
  }
}

async function startFastify(
  sessions: Sessions<Attributes>,
  options: HttpSessionOptions,
): Promise<RunningDoor> {
  const app = Fastify({ logger: false });
  await app.register(sessionPlugin(sessions, options));
  app.all("/*", async (request, reply) => {
    const result = await route(request.method, request.url, request.headers, request.session);
    reply.code(result.status);
    return result.body;
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => app.close() };
}

function listen(server: Server): Promise<RunningDoor> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        url: `http://127.0.0.1:${port}`,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}
