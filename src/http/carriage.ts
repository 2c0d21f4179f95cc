import { stringifySetCookie } from "cookie";
import { OptionChecker } from "../core/options.js";
import { parseToken, TOKEN_LENGTH } from "../core/tokens.js";
import { type MigrateOptions, Migration } from "./migrate.js";

/** How the HTTP layer carries the session token; shared by node:http, fetch and every adapter. */
export interface HttpSessionOptions {
  /** Cookie name; on https it gets the `__Host-` prefix (`__Secure-` when `path` is not "/"). @default "sid" */
  cookieName?: string;
  /**
   * Header that may carry the token instead of a cookie: "authorization" reads `Bearer <token>`, any
   * other name reads the bare token, false reads cookies only. A header-carried session never gets a cookie.
   * @default "authorization"
   */
  header?: string | false;
  /** Mark the cookie Secure and prefix its name: always, never, or "auto" when the request came over TLS. @default "auto" */
  secure?: boolean | "auto";
  /** With `secure: "auto"`, believe the first `X-Forwarded-Proto` value a proxy in front of the server sets. @default false */
  trustProxy?: boolean;
  /** The cookie's SameSite attribute. @default "lax" */
  sameSite?: "lax" | "strict" | "none";
  /** The cookie's Path attribute. @default "/" */
  path?: string;
  /**
   * The cookie's Domain attribute, to share the session with subdomains (`example.com` also reaches
   * `app.example.com`). A secure cookie with a Domain takes the `__Secure-` prefix, since `__Host-` forbids
   * one. @default none: the cookie goes back to the exact host that set it
   */
  domain?: string;
  /** Give the cookie Max-Age/Expires (the session's absolute expiry); false makes it a browser-session cookie. @default true */
  persistent?: boolean;
  /**
   * Move express-session's sessions over: a request with no stowage token but a validly signed
   * express-session cookie gets that session's data in a new stowage session, once (docs/migrating-from-express-session.md).
   */
  migrate?: MigrateOptions;
}

/** Where a request's token came from. */
export type TokenSource = "cookie" | "header";

/** The token a request carries, if any, and where it was found. */
export interface CarriedToken {
  /** The token text (not yet checked against the store); undefined when there is none. */
  token: string | undefined;
  /** Where it was found; undefined when there is none. */
  via: TokenSource | undefined;
}

const HTTP_OPTIONS = [
  "cookieName",
  "header",
  "secure",
  "trustProxy",
  "sameSite",
  "path",
  "domain",
  "persistent",
  "migrate",
] as const;
// A host name of letters, digits and hyphens in dot-separated labels (a leading dot is old syntax, dropped).
const DOMAIN_RE =
  /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const NONE: CarriedToken = Object.freeze({ token: undefined, via: undefined });
// RFC 6265 cookie-name (an RFC 7230 token) and path-value.
const COOKIE_NAME_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const PATH_RE = /^\/[\u0020-\u003A\u003D-\u007E]*$/;
const HEADER_NAME_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// Longest header value worth looking at: "Bearer " plus a token plus generous whitespace.
const MAX_HEADER_VALUE = 256;
const EPOCH = new Date(0).toUTCString();

/**
 * A Set-Cookie value cut around its token and expiry: `cookie` validates and spells the fixed attributes
 * once, at construction, and a new session's cookie is then three concatenations instead of a call that
 * copies its options and runs six regular expressions (5.8 µs on the bench VM; bench: creating a session).
 */
interface CookieTemplate {
  /** `name=`. */
  head: string;
  /** What `cookie` puts between Max-Age and Expires: `; Domain=...; Path=...`. */
  middle: string;
  /** `; HttpOnly`, `; Secure` if so, `; SameSite=...`. */
  tail: string;
}

/** Reads tokens from requests and writes Set-Cookie values, for one set of options. */
export class Carriage {
  /** Lower-case name of the token header, or undefined when tokens come by cookie only. */
  readonly header: string | undefined;
  readonly #bearer: boolean;
  readonly #secure: boolean | "auto";
  readonly #trustProxy: boolean;
  readonly #plainName: string;
  readonly #secureName: string;
  readonly #sameSite: "lax" | "strict" | "none";
  readonly #path: string;
  readonly #domain: string | undefined;
  readonly #persistent: boolean;
  /** Set-Cookie templates of a plain and a secure request. */
  readonly #templates: readonly [plain: CookieTemplate, secure: CookieTemplate];
  /** Where express-session's sessions are moved from, when the `migrate` option is given. */
  readonly migration: Migration | undefined;

  /** `extra`: option names the entry point itself takes beside these (e.g. `onError`). */
  constructor(options: HttpSessionOptions = {}, extra: readonly string[] = []) {
    const check = new OptionChecker("HTTP session options", options, [...HTTP_OPTIONS, ...extra]);
    const name = check.text("cookieName", "sid");
    if (!COOKIE_NAME_RE.test(name) || /^__(host|secure)-/i.test(name)) {
      throw check.error("cookieName must be a cookie token without a __Host-/__Secure- prefix");
    }
    const path = check.text("path", "/");
    if (!PATH_RE.test(path)) throw check.error("path must start with / and hold no ; or controls");
    const given = check.raw("domain");
    const domain = typeof given === "string" ? given.replace(/^\./, "").toLowerCase() : given;
    if (domain !== undefined && (typeof domain !== "string" || !DOMAIN_RE.test(domain))) {
      throw check.error("domain must be a host name such as example.com");
    }
    const header = check.raw("header") ?? "authorization";
    if (header !== false && (typeof header !== "string" || !HEADER_NAME_RE.test(header))) {
      throw check.error("header must be a header name or false");
    }
    const sameSite = check.oneOf("sameSite", "lax", ["lax", "strict", "none"] as const);
    const secure = check.oneOf("secure", "auto", [true, false, "auto"] as const);
    if (sameSite === "none" && secure === false)
      throw check.error("browsers refuse SameSite=None without Secure");
    this.header = header === false ? undefined : header.toLowerCase();
    this.#bearer = this.header === "authorization";
    this.#secure = secure;
    this.#trustProxy = check.flag("trustProxy", false);
    this.#plainName = name;
    // __Host- demands Path=/ and no Domain; otherwise the weaker __Secure- prefix still applies.
    this.#secureName = `${path === "/" && domain === undefined ? "__Host-" : "__Secure-"}${name}`;
    this.#sameSite = sameSite;
    this.#path = path;
    this.#domain = domain;
    this.#persistent = check.flag("persistent", true);
    this.#templates = [this.#template(false), this.#template(true)];
    const migrate = check.raw("migrate") as MigrateOptions | undefined;
    this.migration = migrate === undefined ? undefined : new Migration(migrate);
  }

  /** True when `isSecure` reads X-Forwarded-Proto; otherwise callers need not look it up. */
  get trustsProxy(): boolean {
    return this.#secure === "auto" && this.#trustProxy;
  }

  /** Whether this request's cookie is Secure and prefixed: `tls` says the socket or URL was https. */
  isSecure(tls: boolean, forwardedProto: string | null | undefined): boolean {
    if (this.#secure !== "auto") return this.#secure;
    if (tls) return true;
    if (!this.#trustProxy || typeof forwardedProto !== "string") return false;
    const comma = forwardedProto.indexOf(",");
    const first = (comma === -1 ? forwardedProto : forwardedProto.slice(0, comma)).trim();
    return first.toLowerCase() === "https";
  }

  /** The cookie name used on a secure or plain request. */
  cookieName(secure: boolean): string {
    return secure ? this.#secureName : this.#plainName;
  }

  /**
   * The token a request carries. A well-formed token in the header wins; otherwise the cookie is read.
   * Anything odd (a cookie name sent twice, junk, huge or non-ASCII values, a value that is not shaped
   * like a token) is "no token", never an error.
   */
  read(cookieHeader: unknown, headerValue: unknown, secure: boolean): CarriedToken {
    const fromHeader = this.#fromHeader(headerValue);
    if (fromHeader !== undefined) return { token: fromHeader, via: "header" };
    const fromCookie = readCookie(cookieHeader, secure ? this.#secureName : this.#plainName);
    // Only the length is checked here: loading parses the token strictly anyway, and a cookie that is not
    // a token loads nothing, exactly as an unknown one does.
    return fromCookie?.length === TOKEN_LENGTH ? { token: fromCookie, via: "cookie" } : NONE;
  }

  /** A Set-Cookie value carrying `token` until `expiresAt` (ms since the epoch). */
  serialize(token: string, expiresAt: number, secure: boolean): string {
    const { head, middle, tail } = this.#templates[secure ? 1 : 0];
    // Fast path (bench: creating a session): the token is base64url and a dot, which cookie-value allows
    // and encodeURIComponent leaves alone, so it goes in as it is.
    if (!this.#persistent) return `${head}${token}${middle}${tail}`;
    const maxAge = Math.max(0, Math.floor((expiresAt - Date.now()) / 1000));
    return `${head}${token}; Max-Age=${maxAge}${middle}; Expires=${new Date(expiresAt).toUTCString()}${tail}`;
  }

  /** A Set-Cookie value that removes the cookie: empty, Max-Age=0, Expires at the epoch. */
  clear(secure: boolean): string {
    const { head, middle, tail } = this.#templates[secure ? 1 : 0];
    return `${head}; Max-Age=0${middle}; Expires=${EPOCH}${tail}`;
  }

  /** `cookie`'s spelling of the fixed attributes, cut where the token, Max-Age and Expires go. */
  #template(secure: boolean): CookieTemplate {
    const name = this.cookieName(secure);
    const head = `${name}=`;
    const fixed = stringifySetCookie(name, "", this.#attributes(secure));
    const at = fixed.indexOf("; HttpOnly");
    return { head, middle: fixed.slice(head.length, at), tail: fixed.slice(at) };
  }

  #attributes(secure: boolean) {
    const domain = this.#domain;
    return domain === undefined
      ? ({ httpOnly: true, sameSite: this.#sameSite, path: this.#path, secure } as const)
      : ({ httpOnly: true, sameSite: this.#sameSite, path: this.#path, domain, secure } as const);
  }

  #fromHeader(value: unknown): string | undefined {
    if (this.header === undefined || typeof value !== "string" || value.length > MAX_HEADER_VALUE)
      return undefined;
    let token = value.trim();
    if (this.#bearer) {
      if (token.length < 7 || token.slice(0, 7).toLowerCase() !== "bearer ") return undefined;
      token = token.slice(7).trimStart();
    }
    return parseToken(token) ? token : undefined;
  }
}

/**
 * The value of cookie `name`, or undefined when it is absent or appears more than once: two cookies of
 * one name mean a second writer (another path, a sibling subdomain) and neither can be trusted to be ours.
 * Reads the value as the cookie package's parser would (spaces and tabs trimmed, %-escapes decoded) without
 * parsing every other cookie on the header.
 */
export function readCookie(header: unknown, name: string): string | undefined {
  if (typeof header !== "string" || header.length <= name.length) return undefined;
  let found = -1;
  for (let at = header.indexOf(name); at !== -1; at = header.indexOf(name, at + name.length)) {
    if (!startsPair(header, at)) continue;
    const equals = nameEnd(header, at + name.length);
    if (equals === -1) continue;
    if (found !== -1) return undefined;
    found = equals;
  }
  if (found === -1) return undefined;
  const semicolon = header.indexOf(";", found + 1);
  return decode(trimmed(header, found + 1, semicolon === -1 ? header.length : semicolon));
}

// The cookie package trims spaces and tabs around a name, so a match may sit after "; \t" and before " =".
function startsPair(header: string, at: number): boolean {
  let i = at - 1;
  while (i >= 0 && isBlank(header.charCodeAt(i))) i--;
  return i < 0 || header.charCodeAt(i) === 59; // ;
}

/** Where the "=" after a name ending at `at` is, or -1 when the name goes on. */
function nameEnd(header: string, at: number): number {
  let i = at;
  while (i < header.length && isBlank(header.charCodeAt(i))) i++;
  return header.charCodeAt(i) === 61 ? i : -1; // =
}

function trimmed(header: string, from: number, to: number): string {
  let start = from;
  let end = to;
  while (start < end && isBlank(header.charCodeAt(start))) start++;
  while (end > start && isBlank(header.charCodeAt(end - 1))) end--;
  return header.slice(start, end);
}

function isBlank(code: number): boolean {
  return code === 32 || code === 9;
}

function decode(value: string): string {
  if (!value.includes("%")) return value;
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
