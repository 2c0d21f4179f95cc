import { isStowageError } from "../core/errors.js";
import type { Sessions } from "../core/manager.js";
import type { Attributes } from "../core/record.js";
import type { Session } from "../core/session.js";
import { type Carriage, type CarriedToken, readCookie, type TokenSource } from "./carriage.js";
import type { Migration } from "./migrate.js";

/** @internal What a lazy session tells the hook on its response. */
export interface ResponseBinding {
  /** Called as the session starts loading (it will then have something to commit): follows the response to the prototype it has now. */
  rebind(): void;
}

/** Options of a `LazySession`. */
export interface LazySessionOptions {
  /** The client's socket, if the adapter has it (see `Sessions.load`). */
  connection?: object;
  /**
   * Takes a failed load instead of the awaiting code, which then never resumes: for frameworks that do
   * not catch a rejected handler (express 4), so the adapter answers the request itself. @default undefined
   */
  onLoadError?: (error: unknown) => void;
  /** Where express-session's sessions are moved from, and the request's Cookie header to find one in. */
  migrate?: { migration: Migration; cookie: unknown };
}

/**
 * A request's session, read from the store only on the first `await`: a request that never awaits it
 * costs no store call. It resolves to the session the token names, or to a new blank session when the
 * token is missing, malformed, unknown, forged or expired. A store failure rejects with STORE_UNAVAILABLE.
 */
export class LazySession<A extends object = Attributes> implements PromiseLike<Session<A>> {
  /** The token the request carried (unchecked), if any. */
  readonly token: string | undefined;
  /** Where the token came from; undefined when the request carried none. */
  readonly via: TokenSource | undefined;
  readonly #sessions: Sessions<A>;
  readonly #connection: object | undefined;
  readonly #onLoadError: ((error: unknown) => void) | undefined;
  readonly #migrate: LazySessionOptions["migrate"];
  /** The express-session sid this session was moved from, to destroy once the session is stored. */
  #movedFrom: string | undefined;
  #promise: Promise<Session<A>> | undefined;
  /** What `then` hands out when `onLoadError` takes failures: `#promise` with its rejection withheld. */
  #awaited: Promise<Session<A>> | undefined;
  #session: Session<A> | undefined;
  // Set when the token named a live session: the token as the same string object the session holds, so
  // telling whether the session still has it is an identity check rather than a text comparison.
  #loadedToken: string | undefined;
  /**
   * @internal The adapter's hook on the response this session commits with: how an express response,
   * which carries no property of stowage's, finds its session as it ends (see `attachToExpress`).
   */
  response: ResponseBinding | undefined = undefined;

  constructor(sessions: Sessions<A>, carried: CarriedToken, options: LazySessionOptions = {}) {
    this.#sessions = sessions;
    this.#connection = options.connection;
    this.#onLoadError = options.onLoadError;
    this.#migrate = options.migrate;
    this.token = carried.token;
    this.via = carried.via;
  }

  // biome-ignore lint/suspicious/noThenProperty: being awaitable is the point of a lazy session.
  then<R1 = Session<A>, R2 = never>(
    onfulfilled?: ((session: Session<A>) => R1 | PromiseLike<R1>) | null,
    onrejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    return this.#load().then(onfulfilled, onrejected);
  }

  /** The session if it has been loaded already, without touching the store. */
  peek(): Session<A> | undefined {
    return this.#session;
  }

  /** @internal True once a load was started (it may still be running). */
  get started(): boolean {
    return this.#promise !== undefined;
  }

  /** True once the session has been loaded (or created). */
  get loaded(): boolean {
    return this.#session !== undefined;
  }

  /** True when the request's token named a live session. */
  get found(): boolean {
    return this.#loadedToken !== undefined;
  }

  /**
   * @internal True when the loaded session still has the token the request carried. An identity check
   * on purpose: the session hands out the very string it was loaded with until it gets a new token, and a
   * new token is a new string, so no characters are compared. A false "changed" would only resend the cookie.
   */
  keeps(session: Session<A>): boolean {
    return this.#loadedToken !== undefined && session.token === this.#loadedToken;
  }

  /** @internal The session once a started load settles; undefined if none was started or it failed. */
  settled(): Promise<Session<A> | undefined> {
    return this.#promise ? this.#promise.catch(() => undefined) : Promise.resolve(undefined);
  }

  #load(): Promise<Session<A>> {
    if (this.#promise === undefined) {
      this.response?.rebind();
      this.#promise = this.#open();
      const take = this.#onLoadError;
      if (take !== undefined) {
        // The failure is the adapter's to answer; whoever awaits is left waiting and is collected with
        // the request. `settled()` still sees the real outcome.
        this.#promise.catch(take);
        this.#awaited = this.#promise.catch(() => new Promise<never>(() => {}));
      }
    }
    return this.#awaited ?? this.#promise;
  }

  #open(): Promise<Session<A>> {
    if (this.token === undefined) return this.#fallback();
    // An in-process store answers at once: the session is ready before the first await resumes.
    let now: Session<A> | null | undefined;
    try {
      now = this.#sessions.loadNow(this.token, this.#connection);
    } catch (error) {
      return Promise.reject(error);
    }
    if (now !== undefined) return now === null ? this.#fallback() : Promise.resolve(this.#adopt(now));
    return this.#sessions
      .load(this.token, this.#connection)
      .then((loaded) => (loaded === null ? this.#fallback() : this.#adopt(loaded)));
  }

  /** No stowage session: the express-session one the old cookie names, moved over, or a new one. */
  #fallback(): Promise<Session<A>> {
    const migrate = this.#migrate;
    const old = migrate && readCookie(migrate.cookie, migrate.migration.name);
    if (old === undefined) return Promise.resolve(this.#adopt(null));
    return migrate!.migration.take(this.#sessions, old).then((moved) => {
      if (!moved) return this.#adopt(null);
      this.#movedFrom = moved.sid;
      this.#session = moved.session;
      return moved.session;
    });
  }

  /** @internal The session is stored: the express-session record it was moved from goes. */
  stored(): void {
    const sid = this.#movedFrom;
    if (sid === undefined) return;
    this.#movedFrom = undefined;
    this.#migrate!.migration.destroy(sid);
  }

  #adopt(loaded: Session<A> | null): Session<A> {
    if (loaded !== null) this.#loadedToken = loaded.token;
    this.#session = loaded ?? this.#sessions.create();
    return this.#session;
  }
}

/** What `openSession` reads a request's token from. */
export interface OpenSessionInput extends LazySessionOptions {
  /** The Cookie header, as the request carried it. */
  cookie: unknown;
  /** The value of the token header (`HttpSessionOptions.header`), if the carriage reads one. */
  header: unknown;
  /** Whether the request counts as secure (see `Carriage.isSecure`): which cookie name is read. */
  secure: boolean;
}

/**
 * Opens a request's lazy session from what its headers carry. Pass the client's socket as `connection`
 * when there is one: a keep-alive client's repeated token is then checked without hashing it again.
 */
export function openSession<A extends object>(
  sessions: Sessions<A>,
  carriage: Carriage,
  input: OpenSessionInput,
): LazySession<A> {
  const migration = carriage.migration;
  return new LazySession(
    sessions,
    carriage.read(input.cookie, input.header, input.secure),
    migration === undefined ? input : { ...input, migrate: { migration, cookie: input.cookie } },
  );
}

/** How `commitSession` commits. */
export interface CommitSessionOptions {
  /** Whether the request counts as secure: which cookie name and attributes the Set-Cookie gets. */
  secure: boolean;
  /** Allow a due routine rotation; false once headers are out, since the new token could not reach the client. */
  rotate: boolean;
}

/**
 * The Set-Cookie a response needs for this session as it stands, or undefined. Works before the commit
 * (to set a cookie on headers that must go out now) and after it. A session loaded through a rotation
 * alias still carries the client's token, so it gets no cookie: the request that rotated sends the new one.
 */
export function cookieFor<A extends object>(
  lazy: LazySession<A>,
  session: Session<A>,
  carriage: Carriage,
  secure: boolean,
): string | undefined {
  if (lazy.via === "header") return undefined;
  const held = session.clientToken();
  // Ended, or logged out and left blank: drop the cookie that named it.
  if (held === undefined) return lazy.found ? carriage.clear(secure) : undefined;
  if (lazy.via === "cookie" && lazy.keeps(session)) return undefined;
  return carriage.serialize(held.token, held.expiresAt, secure);
}

/**
 * Commits a request's session (if the request touched it) and resolves the Set-Cookie to send, if any.
 * Header-carried sessions never rotate on their own: the client could not learn the new token. A
 * session ended elsewhere meanwhile (SESSION_ENDED) is treated as ended here.
 */
export async function commitSession<A extends object>(
  sessions: Sessions<A>,
  lazy: LazySession<A>,
  carriage: Carriage,
  { secure, rotate }: CommitSessionOptions,
): Promise<string | undefined> {
  const session = lazy.peek() ?? (await lazy.settled());
  if (!session) return undefined;
  try {
    await sessions.commit(session, { rotate: rotate && lazy.via !== "header" });
  } catch (error) {
    if (!isStowageError(error, "SESSION_ENDED")) throw error;
    return lazy.via === "cookie" && lazy.found ? carriage.clear(secure) : undefined;
  }
  lazy.stored();
  return cookieFor(lazy, session, carriage, secure);
}

/**
 * `commitSession` done at once, when it can be (see `Sessions.commitNow`): the Set-Cookie to send (or
 * undefined) in a box, or undefined when the commit must be awaited through `commitSession`. Throws what
 * `commitSession` rejects with.
 */
export function commitSessionNow<A extends object>(
  sessions: Sessions<A>,
  lazy: LazySession<A>,
  carriage: Carriage,
  { secure, rotate }: CommitSessionOptions,
): { cookie: string | undefined } | undefined {
  const session = lazy.peek();
  if (!session) return lazy.started ? undefined : { cookie: undefined };
  // commitNow never throws SESSION_ENDED: a session ended meanwhile is left to the awaited path.
  const wrote = sessions.commitNow(session, { rotate: rotate && lazy.via !== "header" });
  if (wrote === undefined) return undefined;
  lazy.stored();
  return { cookie: cookieFor(lazy, session, carriage, secure) };
}

/** True for the failure that becomes a 503: the store could not be reached. */
export function isUnavailable(error: unknown): boolean {
  return isStowageError(error, "STORE_UNAVAILABLE");
}

/** Body of the 503 sent when the store is unreachable. */
export const UNAVAILABLE_BODY = "Service Unavailable: the session store cannot be reached\n";

/** The 503 a fetch handler returns when the store is unreachable. */
export function unavailableResponse(): Response {
  return new Response(UNAVAILABLE_BODY, {
    status: 503,
    headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
  });
}
