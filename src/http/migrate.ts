// Moving express-session sessions over: a request that carries no stowage token but a valid, signed
// express-session cookie gets that session's data in a new stowage session, once. The old record is
// destroyed after the new session is committed, so a failed commit loses nothing.
import { StowageError } from "../core/errors.js";
import type { Sessions } from "../core/manager.js";
import { OptionChecker } from "../core/options.js";
import type { Attributes } from "../core/record.js";
import { MAX_LIFETIME_MS, type Session } from "../core/session.js";
import { unsign } from "./signature.js";

/** What an express-session store holds for a session: its cookie, then the application's properties. */
export interface LegacySessionData {
  /** express-session's cookie: `expires` is when the session ends (null: a browser-session cookie). */
  cookie?: { expires?: string | Date | null; originalMaxAge?: number | null } | null;
  /** Everything else the application stored (`passport`, `flash`, a cart…). */
  [key: string]: unknown;
}

/** The part of an express-session store (connect-redis, connect-pg-simple, MemoryStore…) a move needs. */
export interface LegacyStore {
  /** Reads a session by its sid (a `LegacySessionData`); `null` or `undefined` when there is none. */
  get(sid: string, callback: (error: unknown, session?: unknown) => void): void;
  /** Removes a session. */
  destroy(sid: string, callback?: (error?: unknown) => void): void;
}

/** Where to find express-session's sessions, to move them over on first sight. */
export interface MigrateOptions {
  /** The express-session store the old sessions are in. */
  store: LegacyStore;
  /** express-session's `secret` (every one that may have signed a cookie still in use). */
  secret: string | readonly string[];
  /** express-session's cookie name. @default "connect.sid" */
  name?: string;
}

/** An old session, read to be moved. */
export interface OldSession {
  /** Its express-session sid. */
  sid: string;
  /** The application's properties (everything but `cookie`). */
  properties: Record<string, unknown>;
  /** Milliseconds left until the old cookie expired; undefined for a browser-session cookie. */
  lifetime: number | undefined;
  /** passport's signed-in user, when it is a string or a number. */
  userId: string | undefined;
}

/** A moved session, with the old sid to destroy once the new one is stored. */
export interface Moved<A extends object> {
  session: Session<A>;
  sid: string;
}

/**
 * Reads express-session's signed cookie and moves the session it names. express-session's cookie is
 * `s:` + sid + `.` + base64(HMAC-SHA256(secret, sid)) without padding (the cookie-signature package).
 */
export class Migration {
  /** The old cookie's name. */
  readonly name: string;
  readonly #store: LegacyStore;
  readonly #secrets: readonly string[];

  constructor(options: MigrateOptions) {
    const check = new OptionChecker("HTTP session options migrate", options, ["store", "secret", "name"]);
    const store = check.raw("store") as LegacyStore | undefined;
    if (typeof store?.get !== "function" || typeof store.destroy !== "function") {
      throw check.error("migrate.store must be an express-session store (with get and destroy)");
    }
    const secret = check.raw("secret");
    const secrets = typeof secret === "string" ? [secret] : Array.isArray(secret) ? secret : [];
    if (secrets.length === 0 || !secrets.every((s) => typeof s === "string" && s.length > 0)) {
      throw check.error(
        "migrate.secret must be express-session's secret: a non-empty string or array of them",
      );
    }
    this.#store = store;
    this.#secrets = secrets;
    this.name = check.text("name", "connect.sid");
  }

  /** The sid a signed cookie value names, or undefined when it is unsigned, forged or signed by another secret. */
  unsign(value: string): string | undefined {
    return value.startsWith("s:") ? unsign(value.slice(2), this.#secrets) : undefined;
  }

  /**
   * The live old session a request's old cookie names, or undefined when it names none (unsigned, forged,
   * unknown, expired). STORE_UNAVAILABLE when the old store fails; the old session then stays where it is.
   */
  async read(cookie: string | undefined, now: number): Promise<OldSession | undefined> {
    const sid = cookie === undefined ? undefined : this.unsign(cookie);
    if (sid === undefined) return undefined;
    const data = await new Promise<unknown>((resolve, reject) => {
      try {
        this.#store.get(sid, (error, found) => (error ? reject(error) : resolve(found)));
      } catch (error) {
        reject(error);
      }
    }).catch((error: unknown) => {
      throw new StowageError("STORE_UNAVAILABLE", "the express-session store could not be read", {
        cause: error,
      });
    });
    if (!data || typeof data !== "object" || Array.isArray(data)) return undefined;
    const { cookie: old, ...properties } = data as LegacySessionData;
    const expires = old?.expires == null ? undefined : new Date(old.expires).getTime();
    if (expires !== undefined && !(expires > now)) return undefined;
    const lifetime = expires === undefined ? undefined : Math.min(expires - now, MAX_LIFETIME_MS);
    const user = (properties.passport as { user?: unknown } | undefined)?.user;
    return {
      sid,
      properties,
      lifetime,
      userId: typeof user === "string" || typeof user === "number" ? String(user) : undefined,
    };
  }

  /**
   * The stowage session a request's old cookie moves into, or undefined when it names no live old
   * session. Its properties become attributes, `passport.user` becomes the signed-in user, and the old
   * cookie's expiry becomes the session's own lifetime. STORE_UNAVAILABLE when the old store fails: the
   * request is answered 503 and the old session stays where it is.
   */
  async take<A extends object>(
    sessions: Sessions<A>,
    cookie: string | undefined,
  ): Promise<Moved<A> | undefined> {
    const old = await this.read(cookie, sessions.now());
    if (old === undefined) return undefined;
    let session: Session<A>;
    try {
      session = sessions.create({ attributes: old.properties as Partial<A> & Attributes });
      if (old.userId !== undefined) session.login(old.userId);
      if (old.lifetime !== undefined) session.setLifetime(old.lifetime);
    } catch (error) {
      // Data stowage cannot keep (not JSON, too large) stays in the old store rather than half-moved.
      if (error instanceof StowageError) return undefined;
      throw error;
    }
    return { session, sid: old.sid };
  }

  /**
   * Removes a moved session from the old store. A failure is let go: the client sends the stowage cookie
   * from now on, so the old record is not read again and lapses with its own expiry.
   */
  destroy(sid: string): void {
    try {
      this.#store.destroy(sid, () => undefined);
    } catch {
      // Its cookie is answered by the stowage session from now on; the record lapses with its own TTL.
    }
  }
}
