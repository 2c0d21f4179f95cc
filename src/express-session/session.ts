import { EventEmitter } from "node:events";
import type { IncomingMessage } from "node:http";
import { Cookie, type CookieData } from "./cookie.js";
import { grantOf, stateOf, storedOf } from "./grants.js";
import { copyProperty } from "./properties.js";

/** Completion callback of the session methods. */
export type SessionCallback = (error?: unknown) => void;

/** A request as stowage/express-session sees it: express-session's additions to it. */
export interface SessionIncomingMessage extends IncomingMessage {
  /** The session (absent when the store is disconnected or the path does not match). */
  session?: Session | null | undefined;
  /** The session's id (the public half of its token on a stowage store). */
  sessionID?: string;
  /** The store the sessions are in. */
  sessionStore?: Store;
  /** express-session's fallback secret, read when the `secret` option is not given. */
  secret?: string;
}

/**
 * `req.session`: the application's properties on a plain object, with express-session's methods (not
 * enumerable, so they stay out of JSON and `Object.keys`).
 */
export class Session {
  /** The session's id (`req.sessionID` when it was made). */
  declare readonly id: string;
  /** The request the session belongs to. */
  declare readonly req: SessionIncomingMessage;
  /** The session's cookie. */
  declare cookie: Cookie;
  /** The application's properties. */
  [key: string]: unknown;

  constructor(req: SessionIncomingMessage, data?: object | null) {
    // A session StowageStore.get has just read is already an object of this class: it becomes the session
    // itself rather than being copied (a bench row: the drop-in's CPU per request).
    const stored = typeof data === "object" && data !== null ? storedOf(data) : undefined;
    if (stored !== undefined && stored.fresh === data) {
      stored.fresh = undefined;
      const session = data as Session;
      for (const key of Object.keys(session)) if (key in Session.prototype) delete session[key];
      Object.defineProperty(session, "req", { value: req });
      Object.defineProperty(session, "id", { value: req.sessionID });
      // biome-ignore lint/correctness/noConstructorReturn: the read data becomes the session (see above)
      return session;
    }
    Object.defineProperty(this, "req", { value: req });
    Object.defineProperty(this, "id", { value: req.sessionID });
    if (typeof data === "object" && data !== null) {
      for (const key of Object.keys(data)) {
        if (!(key in this)) copyProperty(this, data, key);
      }
    }
  }

  /** Renews the cookie's expiry (`maxAge` back to its original value); the middleware does it on each request. */
  touch(): this {
    return this.resetMaxAge();
  }

  /** Sets `cookie.maxAge` back to `cookie.originalMaxAge`. */
  resetMaxAge(): this {
    this.cookie.maxAge = this.cookie.originalMaxAge;
    return this;
  }

  /** Writes the session to the store now (the middleware does it at the end of the response on its own). */
  save(callback?: SessionCallback): this {
    stateOf(this.req)?.saving?.(this);
    sessionStoreOf(this).set(this.id, this, callback ?? noop);
    return this;
  }

  /** Reads the session from the store again, replacing `req.session`. */
  reload(callback: SessionCallback): this {
    const req = this.req;
    const store = sessionStoreOf(this);
    store.get(this.id, (error, data) => {
      if (error) return callback(error);
      if (!data) return callback(new Error("failed to load session"));
      const grant = grantOf(req, this.id);
      const stored = storedOf(data);
      if (grant !== undefined && stored !== undefined) grant.stored = stored.snapshot;
      store.createSession(req, data);
      callback();
    });
    return this;
  }

  /** Ends the session: removes it from the store and from the request. */
  destroy(callback?: SessionCallback): this {
    delete this.req.session;
    sessionStoreOf(this).destroy(this.id, callback ?? noop);
    return this;
  }

  /** Ends the session and puts a new, empty one with a new id on the request. */
  regenerate(callback: SessionCallback): this {
    sessionStoreOf(this).regenerate(this.req, callback);
    return this;
  }
}

function sessionStoreOf(session: Session): Store {
  const store = session.req?.sessionStore;
  if (store === undefined) throw new Error("req.sessionStore is not set");
  return store;
}

function noop(): void {}

/** What a store holds for a session: its cookie, then the application's properties. */
export interface SessionData {
  /** The cookie's settings (`expires` may come back from JSON as text). */
  cookie: CookieData | (Omit<CookieData, "expires"> & { expires: string | Date | null });
  /** The application's properties. */
  [key: string]: unknown;
}

/** A callback that gets a session's data, or nothing when there is none. */
export type GetCallback = (error: unknown, session?: SessionData | null) => void;

/**
 * express-session's store interface: what the middleware calls. `get`, `set` and `destroy` are the
 * store's own; `touch`, `all`, `length` and `clear` are optional; the rest comes from `Store`. A store
 * emits `disconnect` when it cannot serve and `connect` when it can again.
 */
export interface Store extends EventEmitter {
  /** Reads a session. */
  get(sid: string, callback: GetCallback): void;
  /** Writes a session. */
  set(sid: string, session: SessionData, callback?: SessionCallback): void;
  /** Removes a session. */
  destroy(sid: string, callback?: SessionCallback): void;
  /** Renews a session's expiry without writing it. */
  touch?(sid: string, session: SessionData, callback?: SessionCallback): void;
  /** Every session, by sid. */
  all?(callback: (error: unknown, sessions?: Record<string, SessionData> | null) => void): void;
  /** How many sessions there are. */
  length?(callback: (error: unknown, length?: number) => void): void;
  /** Removes every session. */
  clear?(callback?: SessionCallback): void;
  /** Puts a new session on the request; installed by the middleware. */
  generate?(req: SessionIncomingMessage): void;
  /** Destroys the request's session and generates a new one. */
  regenerate(req: SessionIncomingMessage, callback: SessionCallback): void;
  /** Reads a session as a `Session` of a request of its own. */
  load(sid: string, callback: (error: unknown, session?: Session) => void): void;
  /** Turns stored data into the request's `Session`. */
  createSession(req: SessionIncomingMessage, data: SessionData): Session;
}

/** The `Store` constructor: extend it with `class` or, as older stores do, with `Store.call(this)`. */
export interface StoreConstructor {
  /** A store with no sessions of its own (a subclass brings `get`, `set` and `destroy`). */
  new (): Store;
  /** The methods every store inherits. */
  readonly prototype: Store;
}

/**
 * The base of express-session stores, as express-session exports it: a function constructor over
 * EventEmitter, so that stores written as `Store.call(this)` + `util.inherits` work alongside classes.
 */
export const Store = function Store(this: EventEmitter) {
  EventEmitter.call(this);
} as unknown as StoreConstructor;

Object.setPrototypeOf(Store.prototype, EventEmitter.prototype);

Object.defineProperties(Store.prototype, {
  regenerate: method(function regenerate(
    this: Store,
    req: SessionIncomingMessage,
    callback: SessionCallback,
  ) {
    this.destroy(req.sessionID ?? "", (error) => {
      this.generate?.(req);
      callback(error);
    });
  }),
  load: method(function load(
    this: Store,
    sid: string,
    callback: (error: unknown, session?: Session) => void,
  ) {
    this.get(sid, (error, data) => {
      if (error) return callback(error);
      if (!data) return callback(undefined);
      const req = { sessionID: sid, sessionStore: this } as SessionIncomingMessage;
      callback(undefined, this.createSession(req, data));
    });
  }),
  createSession: method(function createSession(this: Store, req: SessionIncomingMessage, data: SessionData) {
    const expires = data.cookie.expires;
    const originalMaxAge = data.cookie.originalMaxAge;
    const cookie = new Cookie(data.cookie as Partial<CookieData>);
    if (typeof expires === "string") cookie.expires = new Date(expires);
    cookie.originalMaxAge = originalMaxAge;
    data.cookie = cookie;
    const session = new Session(req, data);
    req.session = session;
    return session;
  }),
});

function method(value: (...args: never[]) => unknown): PropertyDescriptor {
  return { value, writable: true, configurable: true, enumerable: false };
}
