import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  equalBytes,
  equalText,
  ID_LENGTH,
  issueToken,
  isValidId,
  matchesVerifier,
  parseToken,
  SECRET_LENGTH,
  TOKEN_LENGTH,
  TokenMemo,
  verifierOf,
} from "../../src/core/tokens.js";

describe("tokens", () => {
  it("mints id.secret of 16 + 32 random bytes in base64url", () => {
    const { id, token, verifier } = issueToken();
    expect(token).toHaveLength(TOKEN_LENGTH);
    expect(id).toHaveLength(ID_LENGTH);
    expect(Buffer.from(id, "base64url")).toHaveLength(16);
    const secret = token.slice(ID_LENGTH + 1);
    expect(secret).toHaveLength(SECRET_LENGTH);
    expect(Buffer.from(secret, "base64url")).toHaveLength(32);
    expect(verifier).toBe(verifierOf(secret));
    expect(verifier).not.toContain(secret);
  });

  it("never repeats across 10,000 tokens, ids and secrets alike, across many refills of the pool", () => {
    const ids = new Set<string>();
    const secrets = new Set<string>();
    for (let i = 0; i < 10_000; i++) {
      const { token } = issueToken();
      ids.add(token.slice(0, 22));
      secrets.add(token.slice(23));
    }
    expect(ids.size).toBe(10_000);
    expect(secrets.size).toBe(10_000);
    // Every secret's bytes are their own: no two tokens share a stretch of the pool (8 bytes is enough to tell).
    const chunks = new Set<string>();
    for (const secret of secrets) chunks.add(Buffer.from(secret, "base64url").subarray(0, 8).toString("hex"));
    expect(chunks.size).toBe(10_000);
  });

  it("parses what it mints", () => {
    const { id, token } = issueToken();
    expect(parseToken(token)).toEqual({ id, secret: token.slice(ID_LENGTH + 1) });
  });

  it("refuses everything else", () => {
    const good = issueToken().token;
    const secret = good.slice(ID_LENGTH + 1);
    const bad: unknown[] = [
      undefined,
      null,
      42,
      {},
      "",
      ".",
      "x".repeat(10_000),
      good.replace(".", ""),
      good.replace(".", "!"),
      `${good}=`,
      `${good} `,
      ` ${good}`,
      good.slice(1),
      `${good}A`,
      good.replace(/[A-Za-z]/, "+"),
      good.replace(/[A-Za-z]/, "/"),
      good.replace(/[A-Za-z]/, "é"),
      good.replace(/[A-Za-z]/, "😀").slice(0, TOKEN_LENGTH),
      `${good.slice(0, 21)}B.${secret}`, // non-canonical last id character
      `${good.slice(0, ID_LENGTH)}.${secret.slice(0, 42)}B`, // non-canonical last secret character
      `${good.slice(0, ID_LENGTH)}.${secret}`.replace(".", ".."),
    ];
    for (const input of bad) expect(parseToken(input), String(input).slice(0, 80)).toBeNull();
  });

  it("checks the secret against the verifier", () => {
    const a = issueToken();
    const b = issueToken();
    const memo = new TokenMemo();
    expect(matchesVerifier(memo.check(a.token, undefined)!, a.verifier)).toBe(true);
    expect(matchesVerifier(memo.check(a.token, undefined)!, b.verifier)).toBe(false);
    expect(matchesVerifier(memo.check(a.token, undefined)!, "short")).toBe(false);
  });

  it("remembers the last token per connection, and only that exact token", () => {
    const memo = new TokenMemo();
    const connection = {};
    const { token, verifier } = issueToken();
    const first = memo.check(token, connection)!;
    expect(first.hashed).toBeUndefined(); // nothing hashed until a stored verifier is there to compare
    expect(matchesVerifier(first, verifier)).toBe(true);
    // The same text again (a new string, as the next request's header would be) is the remembered check.
    const again = memo.check(`${token}`.slice(0), connection)!;
    expect(again).toBe(first);
    expect(Buffer.from(again.hashed!).toString()).toBe(verifier);
    // One character off: parsed afresh, and it does not verify.
    const last = token.at(-2) === "A" ? "B" : "A";
    const altered = `${token.slice(0, -2)}${last}${token.at(-1)}`;
    const other = memo.check(altered, connection)!;
    expect(other).not.toBe(first);
    expect(matchesVerifier(other, verifier)).toBe(false);
    // Another connection, or none, shares nothing.
    expect(memo.check(token, {})).not.toBe(first);
    expect(memo.check(token, undefined)).not.toBe(first);
    // Malformed input is null and leaves the remembered token in place.
    expect(memo.check("junk", connection)).toBeNull();
    expect(memo.check(7, connection)).toBeNull();
    expect(memo.check(altered, connection)).toBe(other);
  });

  it("recognises the remembered token by every character, whatever the scratch space held before", () => {
    const memo = new TokenMemo();
    const connection = {};
    const { token } = issueToken();
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: token.length - 1 }),
        fc.constantFrom("A", "z", "-", "_", "0", "é", "\u0000", "😀".charAt(0)),
        fc.string({ minLength: 67, maxLength: 80 }),
        (at, char, longer) => {
          const remembered = memo.check(token, connection)!;
          // A longer text through the shared scratch bytes first: what it leaves past the token must not count.
          equalText(longer, longer);
          expect(memo.check(`${token}`.slice(0), connection)).toBe(remembered);
          const altered = `${token.slice(0, at)}${char}${token.slice(at + 1)}`;
          if (altered !== token) expect(memo.check(altered, connection)).not.toBe(remembered);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("remembers a match only for the verifier it matched", () => {
    const memo = new TokenMemo();
    const connection = {};
    const a = issueToken();
    const b = issueToken();
    const checked = memo.check(a.token, connection)!;
    expect(matchesVerifier(checked, a.verifier)).toBe(true);
    expect(checked.matched).toBe(a.verifier);
    // The store's verifier for that id changed (another secret now): compared again, and refused.
    expect(matchesVerifier(memo.check(a.token, connection)!, b.verifier)).toBe(false);
    // A refusal does not replace the remembered match, and the same text from another read still matches.
    expect(checked.matched).toBe(a.verifier);
    expect(matchesVerifier(memo.check(a.token, connection)!, `${a.verifier}`.slice(0))).toBe(true);
    // A token never matched remembers nothing.
    const fresh = memo.check(b.token, {})!;
    expect(matchesVerifier(fresh, a.verifier)).toBe(false);
    expect(fresh.matched).toBeUndefined();
  });

  it("validates bare ids", () => {
    expect(isValidId(issueToken().id)).toBe(true);
    expect(isValidId("abc")).toBe(false);
    expect(isValidId(7)).toBe(false);
  });

  it("accepts exactly the canonical base64url spellings, character by character", () => {
    // The grammar as a regular expression is the reference; the parser uses a lookup table instead.
    const tokenGrammar = /^[A-Za-z0-9_-]{21}[AQgw]\.[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;
    const idGrammar = /^[A-Za-z0-9_-]{21}[AQgw]$/;
    const good = issueToken().token;
    const alphabet = [
      ..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \u00e9\u0100\u007f",
    ];
    // One or two characters of a real token replaced, so most inputs sit right at the grammar's edge.
    const mutated = fc
      .tuple(
        fc.nat(TOKEN_LENGTH - 1),
        fc.constantFrom(...alphabet),
        fc.nat(TOKEN_LENGTH - 1),
        fc.constantFrom(...alphabet),
      )
      .map(([i, a, j, b]) => {
        const chars = [...good];
        chars[i] = a;
        chars[j] = b;
        return chars.join("");
      });
    fc.assert(
      fc.property(mutated, (input) => {
        expect(parseToken(input) !== null).toBe(tokenGrammar.test(input));
        const id = input.slice(0, ID_LENGTH);
        expect(isValidId(id)).toBe(idGrammar.test(id));
      }),
      { numRuns: 20_000 },
    );
  });

  it("compares texts by content and length only", () => {
    expect(equalText("abc", "abc")).toBe(true);
    expect(equalText("abc", "abd")).toBe(false);
    expect(equalText("abc", "ab")).toBe(false);
    expect(equalText("", "")).toBe(true);
    expect(equalText("\u0100", "\u0000")).toBe(false);
    expect(equalText("é", "é")).toBe(true);
    expect(equalText("\uD800", "\uD801")).toBe(false); // both would copy as U+FFFD
    expect(equalText("\uD800", "\uFFFD")).toBe(false);
    expect(equalText("x".repeat(500), "x".repeat(500))).toBe(true);
    expect(equalText("x".repeat(500), `${"x".repeat(499)}y`)).toBe(false);
    expect(equalBytes("abc", Buffer.from("abc"))).toBe(true);
    expect(equalBytes("abd", Buffer.from("abc"))).toBe(false);
    expect(equalBytes("ab", Buffer.from("abc"))).toBe(false);
    expect(equalBytes("\u0161", Buffer.from("a"))).toBe(false); // one char, two UTF-8 bytes: no match
    expect(equalBytes("x".repeat(200), Buffer.from("x".repeat(200)))).toBe(true);
    expect(equalBytes(`${"x".repeat(199)}\u0178`, Buffer.from("x".repeat(200)))).toBe(false);
    fc.assert(
      fc.property(
        fc.string({ unit: "binary", maxLength: 120 }),
        fc.string({ maxLength: 120 }),
        (text, ascii) => {
          expect(equalBytes(text, Buffer.from(ascii))).toBe(text === ascii);
          expect(equalBytes(ascii, Buffer.from(ascii))).toBe(true);
        },
      ),
      { numRuns: 2000 },
    );
    // Whatever the texts, the answer is string equality (the scratch copy and the long-text loop alike);
    // a small alphabet makes equal lengths and equal texts common.
    const text = fc.string({
      unit: fc.constantFrom("a", "b", "é", "\uD800", "\uD801", "\uFFFD"),
      maxLength: 90,
    });
    fc.assert(
      fc.property(text, text, fc.string({ unit: "binary", maxLength: 120 }), (a, b, c) => {
        expect(equalText(a, b)).toBe(a === b);
        expect(equalText(c, a)).toBe(c === a);
        expect(equalText(c, c.slice(0))).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});
