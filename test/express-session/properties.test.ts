import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { defineStored, diff, differs, type Snapshot, Stored } from "../../src/express-session/properties.js";

const json = fc.jsonValue({ maxDepth: 2 });
const keys = fc.constantFrom("a", "b", "c", "d", "cookie");
const edit = fc.oneof(
  fc.record({ kind: fc.constant("read" as const), key: keys }),
  fc.record({ kind: fc.constant("set" as const), key: keys, value: json }),
  fc.record({ kind: fc.constant("delete" as const), key: keys }),
  fc.record({ kind: fc.constant("mutate" as const), key: keys, value: json }),
);

/** A session as StowageStore.get builds it: objects lazy, primitives plain, over a snapshot. */
function loaded(stored: Record<string, unknown>): { session: Record<string, unknown>; base: Snapshot } {
  const base: Snapshot = new Map();
  const session: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(stored)) {
    const entry = new Stored(value);
    base.set(key, entry);
    defineStored(session, key, entry);
  }
  return { session, base };
}

describe("session properties", () => {
  it("differs agrees with diff, and diff finds exactly the properties whose JSON changed", () => {
    fc.assert(
      fc.property(fc.dictionary(keys, json), fc.array(edit, { maxLength: 6 }), (stored, edits) => {
        const { session, base } = loaded(stored);
        for (const e of edits) {
          if (e.kind === "read") void session[e.key];
          else if (e.kind === "set") session[e.key] = e.value;
          else if (e.kind === "delete") delete session[e.key];
          else {
            const current = session[e.key];
            if (current !== null && typeof current === "object")
              (current as Record<string, unknown>).x = e.value;
          }
        }
        const changes = diff(session, base, "cookie");
        const expected = new Set(
          Object.keys(session).filter(
            (k) =>
              k !== "cookie" &&
              JSON.stringify(session[k]) !== undefined &&
              JSON.stringify(session[k]) !== JSON.stringify(stored[k]),
          ),
        );
        expect(new Set(changes.set.keys())).toEqual(expected);
        const removed = Object.keys(stored).filter(
          (k) => k !== "cookie" && (!(k in session) || JSON.stringify(session[k]) === undefined),
        );
        expect(new Set(changes.unset)).toEqual(new Set(removed));
        expect(differs(session, base, "cookie")).toBe(changes.set.size > 0 || changes.unset.length > 0);
      }),
      { numRuns: 2000 },
    );
  });

  it("an unread property is never parsed; reading gives a copy, so the stored value stays as it was", () => {
    const lent = { cart: ["book"] };
    const { session, base } = loaded({ profile: lent });
    expect(Object.keys(session)).toEqual(["profile"]);
    expect(differs(session, base)).toBe(false);
    const read = session.profile as { cart: string[] };
    expect(read).toEqual(lent);
    expect(read).not.toBe(lent);
    read.cart.push("pen");
    expect(lent.cart).toEqual(["book"]);
    expect([...diff(session, base).set.keys()]).toEqual(["profile"]);
  });
});
