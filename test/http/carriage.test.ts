import { parseCookie, parseSetCookie, stringifySetCookie } from "cookie";
import fc from "fast-check";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import { isStowageError } from "../../src/core/errors.js";
import { issueToken } from "../../src/core/tokens.js";
import {
  Carriage,
  type HttpSessionOptions,
  LazySession,
  readCookie,
  requireCsrf,
} from "../../src/http/index.js";
import { createSessions } from "../../src/index.js";

const token = issueToken().token;
const other = issueToken().token;

function carriage(options: HttpSessionOptions = {}): Carriage {
  return new Carriage(options);
}

describe("readCookie", () => {
  it("finds the named cookie among others, with or without spaces around it", () => {
    expect(readCookie(`a=1; sid=${token}; b=2`, "sid")).toBe(token);
    expect(readCookie(`sid=${token}`, "sid")).toBe(token);
    expect(readCookie(`a=1;sid =${token}`, "sid")).toBe(token);
    expect(readCookie(`a=1;\tsid= ${token}`, "sid")).toBe(token);
  });

  it("does not take a cookie whose name merely contains the name", () => {
    expect(readCookie(`xsid=${token}`, "sid")).toBeUndefined();
    expect(readCookie(`sid2=${token}`, "sid")).toBeUndefined();
    expect(readCookie(`a=sid=${token}`, "sid")).toBeUndefined();
    expect(readCookie(`xsid=${other}; sid=${token}`, "sid")).toBe(token);
  });

  it("treats a name sent twice as no cookie, even with the same value", () => {
    expect(readCookie(`sid=${token}; sid=${other}`, "sid")).toBeUndefined();
    expect(readCookie(`sid=${token}; a=1; sid=${token}`, "sid")).toBeUndefined();
  });

  it("reads a value exactly as the cookie package does, for any header that names the cookie once", () => {
    const blank = fc.constantFrom("", " ", "\t", "  ");
    const text = fc.string({ unit: fc.constantFrom(...'ab=%2;" \t\u00e9sidAZ09-_.') });
    const pair = fc.tuple(blank, fc.constantFrom("a", "b", "xsid", "sid2", "s", ""), blank, text);
    const header = fc
      .tuple(fc.array(pair, { maxLength: 4 }), fc.nat(4), blank, blank, text, fc.boolean())
      .map(([others, at, before, after, value, present]) => {
        const parts = others.map(([b, name, a, v]) => `${b}${name}${a}=${v}`);
        if (present) parts.splice(Math.min(at, parts.length), 0, `${before}sid${after}=${value}`);
        return parts.join(";");
      });
    fc.assert(
      fc.property(header, (h) => {
        const ours = readCookie(h, "sid");
        if (ours !== undefined) expect(ours).toBe(parseCookie(h).sid);
      }),
      { numRuns: 5_000 },
    );
    // Without stray separators in the values, every header naming sid once must be read.
    const clean = fc.string({ unit: fc.constantFrom(..."abAZ09-_.%2") });
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom("a", "xsid", "sid2"), clean)),
        clean,
        fc.nat(5),
        (others, value, at) => {
          const parts = others.map(([name, v]) => `${name}=${v}`);
          parts.splice(Math.min(at, parts.length), 0, `sid=${value}`);
          const h = parts.join("; ");
          expect(readCookie(h, "sid")).toBe(parseCookie(h).sid);
        },
      ),
      { numRuns: 5_000 },
    );
  });

  it("answers undefined for missing, empty and non-string headers", () => {
    expect(readCookie(undefined, "sid")).toBeUndefined();
    expect(readCookie("", "sid")).toBeUndefined();
    expect(readCookie(["sid=x"], "sid")).toBeUndefined();
    expect(readCookie("a=1", "sid")).toBeUndefined();
  });
});

describe("Carriage.read", () => {
  it("reads `sid` on http and only `__Host-sid` on https", () => {
    const c = carriage();
    expect(c.read(`sid=${token}`, undefined, false)).toEqual({ token, via: "cookie" });
    expect(c.read(`sid=${token}`, undefined, true)).toEqual({ token: undefined, via: undefined });
    expect(c.read(`__Host-sid=${token}`, undefined, true)).toEqual({ token, via: "cookie" });
    expect(c.read(`__Host-sid=${token}`, undefined, false)).toEqual({ token: undefined, via: undefined });
  });

  it("a configured cookie name replaces sid", () => {
    const c = carriage({ cookieName: "app" });
    expect(c.read(`sid=${other}; app=${token}`, undefined, false).token).toBe(token);
    expect(c.read(`__Host-app=${token}`, undefined, true).token).toBe(token);
  });

  it("junk, unicode, huge and token-like-but-wrong cookie values are no token", () => {
    const c = carriage();
    const flipped = `${token.slice(0, 30)}${token[30] === "A" ? "B" : "A"}${token.slice(31)}`;
    for (const header of [
      "sid=junk",
      "sid=",
      "sid",
      ";;;==;",
      `sid=${token}x`,
      `sid=${token.slice(1)}`,
      `sid=${token.replace(".", "")}`,
      `sid="${token}"`,
      "sid=\u00e9\u{1f600}",
      `sid=${"a".repeat(100_000)}`,
      `sid=%${token}`,
      "sid=%E0%A4%A",
    ]) {
      expect(c.read(header, undefined, false)).toEqual({ token: undefined, via: undefined });
    }
    // A flipped character keeps the shape: it is carried, and the store lookup then finds nothing.
    expect(c.read(`sid=${flipped}`, undefined, false).via).toBe("cookie");
  });

  it("reads `Authorization: Bearer <token>` in any case and spacing; a header token wins over the cookie", () => {
    const c = carriage();
    expect(c.read(undefined, `Bearer ${token}`, false)).toEqual({ token, via: "header" });
    expect(c.read(undefined, `bearer   ${token}  `, false)).toEqual({ token, via: "header" });
    expect(c.read(`sid=${other}`, `Bearer ${token}`, false)).toEqual({ token, via: "header" });
  });

  it("another scheme or a malformed Bearer value falls back to the cookie", () => {
    const c = carriage();
    expect(c.read(`sid=${token}`, "Basic dXNlcjpwYXNz", false)).toEqual({ token, via: "cookie" });
    expect(c.read(`sid=${token}`, "Bearer junk", false)).toEqual({ token, via: "cookie" });
    expect(c.read(`sid=${token}`, `Bearer${token}`, false)).toEqual({ token, via: "cookie" });
    expect(c.read(`sid=${token}`, `Bearer ${"x".repeat(10_000)}`, false)).toEqual({ token, via: "cookie" });
    expect(c.read(undefined, `Bearer ${token}`.repeat(2), false)).toEqual({
      token: undefined,
      via: undefined,
    });
  });

  it("a configured header carries the bare token; header: false reads cookies only", () => {
    const custom = carriage({ header: "X-Session" });
    expect(custom.header).toBe("x-session");
    expect(custom.read(undefined, token, false)).toEqual({ token, via: "header" });
    expect(custom.read(undefined, `Bearer ${token}`, false)).toEqual({ token: undefined, via: undefined });
    const cookiesOnly = carriage({ header: false });
    expect(cookiesOnly.header).toBeUndefined();
    expect(cookiesOnly.read(undefined, `Bearer ${token}`, false)).toEqual({
      token: undefined,
      via: undefined,
    });
  });
});

describe("Carriage.isSecure", () => {
  it("auto follows TLS, and X-Forwarded-Proto's first value only with trustProxy", () => {
    const plain = carriage();
    expect(plain.isSecure(true, undefined)).toBe(true);
    expect(plain.isSecure(false, "https")).toBe(false);
    const proxied = carriage({ trustProxy: true });
    expect(proxied.isSecure(false, "https")).toBe(true);
    expect(proxied.isSecure(false, " HTTPS , http")).toBe(true);
    expect(proxied.isSecure(false, "http, https")).toBe(false);
    expect(proxied.isSecure(false, undefined)).toBe(false);
    expect(proxied.isSecure(false, "")).toBe(false);
  });

  it("true and false are forced", () => {
    expect(carriage({ secure: true }).isSecure(false, undefined)).toBe(true);
    expect(carriage({ secure: false }).isSecure(true, "https")).toBe(false);
  });
});

describe("Set-Cookie serialization", () => {
  const expiresAt = Date.now() + 3_600_000;

  it("plain http: sid, HttpOnly, SameSite=Lax, Path=/, Max-Age and Expires, no Secure, no Domain", () => {
    const raw = carriage().serialize(token, expiresAt, false);
    expect(raw).toMatch(new RegExp(`^sid=${token.replace(".", "\\.")}; `));
    const cookie = parseSetCookie(raw);
    expect(cookie).toMatchObject({ name: "sid", value: token, httpOnly: true, path: "/" });
    expect(raw).toContain("SameSite=Lax");
    expect(raw).not.toContain("Secure");
    expect(raw).not.toContain("Domain");
    expect(cookie.maxAge).toBeGreaterThan(3590);
    expect(cookie.maxAge).toBeLessThanOrEqual(3600);
    expect(cookie.expires?.getTime()).toBe(new Date(expiresAt).setMilliseconds(0));
  });

  it("https: __Host- prefix with Secure and Path=/; another path takes __Secure-", () => {
    const raw = carriage().serialize(token, expiresAt, true);
    expect(raw.startsWith("__Host-sid=")).toBe(true);
    expect(raw).toContain("; Secure");
    expect(raw).toContain("; Path=/");
    const scoped = carriage({ path: "/app" }).serialize(token, expiresAt, true);
    expect(scoped.startsWith("__Secure-sid=")).toBe(true);
    expect(scoped).toContain("; Path=/app");
  });

  it("domain: the cookie carries Domain, and a secure one takes __Secure- (never __Host-)", () => {
    const shared = carriage({ domain: ".Example.com" });
    const plain = parseSetCookie(shared.serialize(token, expiresAt, false));
    expect(plain).toMatchObject({ name: "sid", domain: "example.com", path: "/" });
    const secure = parseSetCookie(shared.serialize(token, expiresAt, true));
    expect(secure).toMatchObject({ name: "__Secure-sid", domain: "example.com", secure: true });
    expect(parseSetCookie(shared.clear(true))).toMatchObject({ name: "__Secure-sid", domain: "example.com" });
    expect(shared.read(`__Secure-sid=${token}`, undefined, true).token).toBe(token);
    expect(carriage().serialize(token, expiresAt, false)).not.toContain("Domain");
  });

  it("persistent: false leaves out Max-Age and Expires; sameSite is configurable", () => {
    const raw = carriage({ persistent: false, sameSite: "strict" }).serialize(token, expiresAt, false);
    expect(raw).not.toContain("Max-Age");
    expect(raw).not.toContain("Expires");
    expect(raw).toContain("SameSite=Strict");
  });

  it("spells every cookie exactly as the cookie library does, for any options and expiry", () => {
    // One clock for both spellings, so Max-Age cannot differ by a second that ticked in between.
    const now = Date.now();
    const clock = vi.spyOn(Date, "now").mockReturnValue(now);
    onTestFinished(() => clock.mockRestore());
    fc.assert(
      fc.property(
        fc.record({
          cookieName: fc.constantFrom("sid", "app_session"),
          sameSite: fc.constantFrom("lax", "strict", "none") as fc.Arbitrary<"lax" | "strict" | "none">,
          path: fc.constantFrom("/", "/app", "/a/b"),
          domain: fc.constantFrom(undefined, "example.com"),
          persistent: fc.boolean(),
        }),
        fc.boolean(),
        fc.integer({ min: -86_400_000, max: 400 * 86_400_000 }),
        (options, secure, offset) => {
          const c = carriage({ ...options, secure: "auto" });
          const expiresAt = now + offset;
          const attributes = {
            httpOnly: true,
            sameSite: options.sameSite,
            path: options.path,
            ...(options.domain === undefined ? {} : { domain: options.domain }),
            secure,
          } as const;
          const expected = stringifySetCookie(
            c.cookieName(secure),
            token,
            options.persistent
              ? {
                  ...attributes,
                  maxAge: Math.max(0, Math.floor(offset / 1000)),
                  expires: new Date(expiresAt),
                }
              : attributes,
          );
          expect(c.serialize(token, expiresAt, secure)).toBe(expected);
        },
      ),
    );
  });

  it("a past expiry gives Max-Age=0, never a negative one", () => {
    expect(parseSetCookie(carriage().serialize(token, Date.now() - 5000, false)).maxAge).toBe(0);
  });

  it("clear: empty value, Max-Age=0, Expires at the epoch, same name and attributes", () => {
    const raw = carriage().clear(true);
    const cookie = parseSetCookie(raw);
    expect(cookie).toMatchObject({
      name: "__Host-sid",
      value: "",
      maxAge: 0,
      path: "/",
      httpOnly: true,
      secure: true,
    });
    expect(cookie.expires?.getTime()).toBe(0);
  });
});

describe("options are checked", () => {
  it.each<[string, HttpSessionOptions]>([
    ["a cookie name with a space", { cookieName: "s id" }],
    ["a prefixed cookie name", { cookieName: "__Host-sid" }],
    ["an empty cookie name", { cookieName: "" }],
    ["a relative path", { path: "app" }],
    ["a path with ;", { path: "/a;b" }],
    ["a header name with a colon", { header: "x:y" }],
    ["an unknown sameSite", { sameSite: "loose" as "lax" }],
    ["SameSite=None without Secure", { sameSite: "none", secure: false }],
    ["an odd secure value", { secure: "yes" as "auto" }],
    ["a domain with a path", { domain: "example.com/x" }],
    ["a domain with a port", { domain: "example.com:80" }],
    ["a domain with a semicolon", { domain: "a.com; Secure" }],
    ["an empty domain", { domain: "" }],
  ])("refuses %s with CONFIG_INVALID", (_what, options) => {
    let error: unknown;
    try {
      new Carriage(options);
    } catch (caught) {
      error = caught;
    }
    expect(isStowageError(error, "CONFIG_INVALID")).toBe(true);
  });
});

describe("LazySession", () => {
  it("reads the store only when awaited, and once", async () => {
    const sessions = createSessions();
    const stored = sessions.create();
    stored.set("a", 1);
    await sessions.commit(stored);
    let loads = 0;
    sessions.on("loaded", () => loads++);
    const lazy = new LazySession(sessions, { token: stored.token, via: "cookie" });
    expect(lazy.loaded).toBe(false);
    expect(lazy.peek()).toBeUndefined();
    expect(loads).toBe(0);
    const [one, two] = await Promise.all([lazy, lazy]);
    expect(one).toBe(two);
    expect(loads).toBe(1);
    expect(lazy.found).toBe(true);
    expect(lazy.peek()?.get("a")).toBe(1);
  });

  it("an unknown token gives a blank new session", async () => {
    const sessions = createSessions();
    const lazy = new LazySession(sessions, { token: issueToken().token, via: "cookie" });
    const session = await lazy;
    expect(lazy.found).toBe(false);
    expect(session.isNew).toBe(true);
    expect(session.keys()).toEqual([]);
  });
});

describe("requireCsrf", () => {
  it("passes safe methods without loading, and checks unsafe ones against the header or a form field", async () => {
    const sessions = createSessions();
    const session = sessions.create();
    const csrf = session.csrfToken;
    await sessions.commit(session);
    const lazy = new LazySession(sessions, { token: session.token, via: "cookie" });
    expect(await requireCsrf({ method: "GET", headers: {} }, lazy)).toBe(true);
    expect(lazy.loaded).toBe(false);
    expect(await requireCsrf({ method: "POST", headers: {} }, lazy)).toBe(false);
    expect(await requireCsrf({ method: "POST", headers: { "x-csrf-token": csrf } }, lazy)).toBe(true);
    expect(
      await requireCsrf({ method: "delete", headers: new Headers({ "x-csrf-token": csrf }) }, lazy),
    ).toBe(true);
    expect(await requireCsrf({ method: "POST", headers: {} }, lazy, csrf)).toBe(true);
    expect(await requireCsrf({ method: "POST", headers: { "x-csrf-token": csrf } }, lazy, "wrong")).toBe(
      false,
    );
    expect(await requireCsrf({ method: "POST", headers: { "x-csrf-token": [csrf, csrf] } }, lazy)).toBe(
      false,
    );
  });
});
