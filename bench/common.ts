import { randomBytes } from "node:crypto";
import type session from "express-session";
import type { Redis } from "ioredis";
import type { Attributes } from "stowage";
import type { Rate } from "./report.js";

/** express-session persists the session together with its cookie; this is that shape. */
export function expressSessionData(attributes: Attributes): session.SessionData & Attributes {
  const maxAge = 14 * 86_400_000;
  return {
    cookie: {
      originalMaxAge: maxAge,
      expires: new Date(Date.now() + maxAge).toISOString(),
      secure: false,
      httpOnly: true,
      path: "/",
      sameSite: "lax",
    },
    ...attributes,
  } as unknown as session.SessionData & Attributes;
}

/** express-session's own id: uid-safe's 24 random bytes, base64url. */
export function expressSessionId(): string {
  return randomBytes(24).toString("base64url");
}

/** The figure `name` from a `measure` result, labelled for the table. */
export function rate(label: string, figures: Map<string, number>, name: string): Rate {
  const perSecond = figures.get(name);
  if (perSecond === undefined) throw new Error(`no figure for ${name}`);
  return { label, perSecond };
}

/** Deletes every key under `prefix` (SCAN, bench cleanup only; the store itself never scans). */
export async function dropPrefix(client: Redis, prefix: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await client.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
    if (keys.length > 0) await client.del(...keys);
    cursor = next;
  } while (cursor !== "0");
}

/**
 * Starts `count` sessions through a bench server's own /login (1 KB) or /login-small and returns their
 * Cookie headers ("" where the server set none).
 */
export async function login(url: string, count: number, small = false): Promise<string[]> {
  const cookies: string[] = [];
  for (let i = 0; i < count; i++) {
    const response = await fetch(`${url}/login${small ? "-small" : ""}`);
    await response.text();
    const cookie = response.headers.getSetCookie()[0]?.split(";")[0];
    cookies.push(cookie ?? "");
  }
  return cookies;
}
