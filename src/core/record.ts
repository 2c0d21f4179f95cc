/** A value that survives JSON round-trip unchanged. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** An attribute bag: JSON values by key. */
export type Attributes = Record<string, JsonValue>;

/** How the current user signed in. */
export type LoginType = "unspecified" | "human" | "robot";

/** Sealed key material for an encrypted connection channel. */
export interface ChannelState {
  /** Cipher suite name, e.g. `x25519-chacha20poly1305`. */
  algorithm: string;
  /** The channel secret sealed with the key ring (never stored in clear). */
  sealedSecret: string;
}

/** Who holds the live connection bound to a session. */
export interface ConnectionRef {
  /** Connection id, unique per server node. */
  id: string;
  /** Node (process) that holds it. */
  node: string;
  /** Bumped by every resume: a holder whose generation is lower has been replaced and may not write. */
  generation: number;
  /** The last client-to-server sequence number the holder processed. */
  received: number;
  /** The client's current public key (raw Ed25519, base64url): a resume must be signed by its private key. */
  key: string;
}

/** Permission levels, 0 to 255; apps may use values in between. */
export const PermissionLevel = {
  NONE: 0,
  GUEST: 25,
  READ_ONLY: 50,
  USER: 100,
  SUPERVISOR: 175,
  TENANT_ADMINISTRATOR: 200,
  SYSTEM_ADMINISTRATOR: 225,
  OWNER: 255,
} as const;

const LEVELS = Object.entries(PermissionLevel).sort((a, b) => b[1] - a[1]);

/** A permission level as its PermissionLevel name; a level between two names shows the lower one plus the rest. */
export function levelName(level: number): string {
  const match = LEVELS.find(([, value]) => value <= level);
  if (!match) return String(level);
  return match[1] === level ? match[0] : `${match[0]}+${level - match[1]}`;
}

/** The snapshot a store persists. Times are ms since the epoch. */
export interface SessionRecord {
  /** 16 random bytes, base64url (22 chars). */
  id: string;
  /** SHA-256 of the token secret, base64url (43 chars); the secret itself is never stored. */
  verifier: string;
  /** 1 on insert, +1 per committed write. */
  version: number;
  /** When the session was created. */
  createdAt: number;
  /** When the current id was issued (creation or last regeneration); drives routine rotation. */
  rotatedAt: number;
  /** Absolute expiry. */
  expiresAt: number;
  /** Sliding (idle) expiry. */
  idleExpiresAt: number;
  /** Signed-in user, if any. */
  userId?: string;
  /** Permission level, 0 to 255. */
  level: number;
  /** How the user signed in. */
  loginType: LoginType;
  /** When the user last signed in. */
  lastLoginAt?: number;
  /** Preferred language tag. */
  language?: string;
  /** JSON attributes. */
  attributes: Attributes;
  /** Sealed channel keys for connection resumption. */
  channel?: ChannelState;
  /** The live connection bound to this session. */
  connection?: ConnectionRef;
}

/** Meta fields a commit may change; `null` clears an optional field. */
export interface MetaPatch {
  expiresAt?: number;
  idleExpiresAt?: number;
  userId?: string | null;
  level?: number;
  loginType?: LoginType;
  lastLoginAt?: number | null;
  language?: string | null;
  channel?: ChannelState | null;
  connection?: ConnectionRef | null;
}

/** The effective expiry of a record: the earlier of absolute and idle expiry. */
export function expiryOf(record: Pick<SessionRecord, "expiresAt" | "idleExpiresAt">): number {
  return Math.min(record.expiresAt, record.idleExpiresAt);
}

/** Applies a meta patch to a record in place (stores that keep whole records use this). */
export function applyMeta(record: SessionRecord, meta: MetaPatch): void {
  for (const key of Object.keys(meta) as (keyof MetaPatch)[]) {
    const value = meta[key];
    if (value === undefined) continue;
    if (value === null) delete (record as unknown as Record<string, unknown>)[key];
    else (record as unknown as Record<string, unknown>)[key] = value;
  }
}
