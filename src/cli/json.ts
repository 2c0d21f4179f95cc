import type { SessionRecord } from "../core/record.js";
import { CSRF_KEY } from "../core/session.js";

/**
 * A session as `--json` prints it: the one schema of `list --json` (one object per line) and
 * `show --json`. Documented in docs/cli.md; fields are only ever added.
 */
export interface SessionJson {
  id: string;
  kind: "http" | "connection";
  userId: string | null;
  level: number;
  loginType: string;
  lastLoginAt: string | null;
  createdAt: string;
  expiresAt: string;
  idleExpiresAt: string;
  language: string | null;
  device: string | null;
  attributes: Record<string, unknown>;
}

const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());

/** The record as `--json` prints it: no token, no verifier, no CSRF secret, no sealed channel secret. */
export function sessionJson(record: SessionRecord): SessionJson {
  const { [CSRF_KEY]: _csrf, ...attributes } = record.attributes;
  return {
    id: record.id,
    kind: record.connection === undefined ? "http" : "connection",
    userId: record.userId ?? null,
    level: record.level,
    loginType: record.loginType,
    lastLoginAt: iso(record.lastLoginAt),
    createdAt: iso(record.createdAt)!,
    expiresAt: iso(record.expiresAt)!,
    idleExpiresAt: iso(record.idleExpiresAt)!,
    language: record.language ?? null,
    device: typeof attributes.device === "string" ? attributes.device : null,
    attributes,
  };
}
