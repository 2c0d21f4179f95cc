import { serialize } from "cookie";

/** The cookie options express-session takes, as stowage/express-session takes them. */
export interface CookieOptions {
  /** Milliseconds the cookie (and the session) lives from each save or touch; null: a browser-session cookie. */
  maxAge?: number | null;
  /** An absolute expiry instead of `maxAge`. */
  expires?: Date | null;
  /** The cookie's Domain attribute. */
  domain?: string;
  /** The cookie's Path attribute; a request outside it gets no session. @default "/" */
  path?: string;
  /** Mark the cookie Secure; "auto" follows the request (see the `proxy` option). @default false */
  secure?: boolean | "auto";
  /** The cookie's HttpOnly attribute. @default true */
  httpOnly?: boolean;
  /** The cookie's SameSite attribute; "auto" is None on a secure request and Lax otherwise. */
  sameSite?: boolean | "lax" | "strict" | "none" | "auto";
  /** The cookie's Partitioned attribute (CHIPS). */
  partitioned?: boolean;
  /** The cookie's Priority attribute. */
  priority?: "low" | "medium" | "high";
}

/** A cookie's settings as they are stored with the session (express-session's `cookie.data`). */
export interface CookieData {
  /** The `maxAge` the session was given, kept across requests. */
  originalMaxAge: number | null;
  /** When the cookie expires; null for a browser-session cookie. */
  expires: Date | null;
  /** The cookie's Secure attribute. */
  secure?: boolean | undefined;
  /** The cookie's HttpOnly attribute. */
  httpOnly: boolean;
  /** The cookie's Domain attribute. */
  domain?: string | undefined;
  /** The cookie's Path attribute. */
  path: string;
  /** The cookie's SameSite attribute. */
  sameSite?: boolean | "lax" | "strict" | "none" | undefined;
  /** The cookie's Partitioned attribute. */
  partitioned?: boolean | undefined;
  /** The cookie's Priority attribute. */
  priority?: "low" | "medium" | "high" | undefined;
}

/**
 * `req.session.cookie`: express-session's Cookie. Setting `maxAge` moves `expires` to that far from now;
 * reading it gives the milliseconds left.
 */
export class Cookie {
  /** The cookie's Path attribute. */
  path = "/";
  /** The cookie's HttpOnly attribute. */
  httpOnly = true;
  /** The cookie's Domain attribute. */
  declare domain?: string | undefined;
  /** The cookie's Secure attribute (a resolved "auto"). */
  declare secure?: boolean | undefined;
  /** The cookie's SameSite attribute (a resolved "auto"). */
  declare sameSite?: boolean | "lax" | "strict" | "none" | undefined;
  /** The cookie's Partitioned attribute. */
  declare partitioned?: boolean | undefined;
  /** The cookie's Priority attribute. */
  declare priority?: "low" | "medium" | "high" | undefined;
  /** The `maxAge` the session was given, kept across requests so `touch` can renew it. */
  originalMaxAge: number | null = null;
  #expires: Date | null = null;

  constructor(options?: CookieOptions | Partial<CookieData> | null) {
    if (options !== undefined && options !== null) {
      if (typeof options !== "object") throw new TypeError("argument options must be a object");
      // Every option is applied in its own order, as express-session's Cookie does (maxAge sets expires).
      for (const key in options) {
        if (key !== "data" && Object.hasOwn(options, key)) {
          (this as Record<string, unknown>)[key] = (options as Record<string, unknown>)[key];
        }
      }
    }
    if (this.originalMaxAge === undefined || this.originalMaxAge === null) this.originalMaxAge = this.maxAge;
  }

  /** When the cookie expires; null for a browser-session cookie. Setting it resets `originalMaxAge`. */
  get expires(): Date | null {
    return this.#expires;
  }

  set expires(date: Date | null) {
    this.#expires = date;
    this.originalMaxAge = this.maxAge;
  }

  /** Milliseconds until the cookie expires; null for a browser-session cookie. */
  get maxAge(): number | null {
    return this.#expires instanceof Date ? this.#expires.valueOf() - Date.now() : this.#expires;
  }

  set maxAge(ms: number | null) {
    if (ms && typeof ms !== "number") throw new TypeError("maxAge must be a number");
    this.expires = typeof ms === "number" ? new Date(Date.now() + ms) : null;
  }

  /** The settings that go with the session to the store and into the Set-Cookie header. */
  get data(): CookieData {
    return {
      originalMaxAge: this.originalMaxAge,
      partitioned: this.partitioned,
      priority: this.priority,
      expires: this.#expires,
      secure: this.secure,
      httpOnly: this.httpOnly,
      domain: this.domain,
      path: this.path,
      sameSite: this.sameSite,
    };
  }

  /** A Set-Cookie value for `name=value` with these settings. */
  serialize(name: string, value: string): string {
    const data = this.data;
    return serialize(name, value, {
      expires: data.expires ?? undefined,
      secure: data.secure,
      httpOnly: data.httpOnly,
      domain: data.domain,
      path: data.path,
      sameSite: data.sameSite,
      partitioned: data.partitioned,
      priority: data.priority,
    });
  }

  /** What JSON.stringify keeps: `data`. */
  toJSON(): CookieData {
    return this.data;
  }
}
