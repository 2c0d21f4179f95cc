import { afterEach, describe, expect, it } from "vitest";
import { expectCode } from "../../src/conformance/helpers.js";
import type { Sessions } from "../../src/core/manager.js";
import { createSessions, KeyRing, PermissionLevel, StowageError } from "../../src/index.js";
import { MemoryStore } from "../../src/stores/memory/index.js";
import { countingStore } from "../helpers/counting-store.js";

const MIN = 60_000;

function fakeClock(start = Date.now()) {
  let now = start;
  return {
    now: () => now,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

const open: Sessions<object>[] = [];
function make<A extends object = Record<string, unknown>>(
  options: Parameters<typeof createSessions>[0] = {},
) {
  const sessions = createSessions<A>({ store: new MemoryStore(), ...options });
  open.push(sessions as unknown as Sessions<object>);
  return sessions;
}
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

describe("load", () => {
  it("returns null for malformed tokens, counts them and never throws", async () => {
    const sessions = make();
    const good = sessions.create();
    good.set("a", 1);
    await good.save();
    const malformed: unknown[] = [
      "",
      "x".repeat(10 * 1024),
      good.token.replace(".", ""),
      "!!!!.@@@@",
      "ünïcödé.tökén",
      good.token.slice(0, 30),
      `${good.token}xx`,
      null,
      undefined,
      12,
      { token: good.token },
    ];
    for (const token of malformed) expect(await sessions.load(token)).toBeNull();
    expect(sessions.stats().malformed).toBe(malformed.length);
  });

  it("returns null for a forged token (right id, wrong secret), counts it and emits forged", async () => {
    const sessions = make();
    const good = sessions.create();
    good.set("a", 1);
    await good.save();
    const forgedEvents: string[] = [];
    sessions.on("forged", (e) => forgedEvents.push(e.id));
    const other = sessions.create().token;
    const forged = `${good.id}.${other.slice(23)}`;
    expect(await sessions.load(forged)).toBeNull();
    expect(sessions.stats().forged).toBe(1);
    expect(forgedEvents).toEqual([good.id]);
    expect(await sessions.load(good.token)).not.toBeNull();
  });

  it("returns null for an unknown token", async () => {
    const sessions = make();
    expect(await sessions.load(sessions.create().token)).toBeNull();
    expect(sessions.stats().unknown).toBe(1);
  });

  it("checks a token remembered for a connection against the store every time", async () => {
    const sessions = make();
    const connection = {};
    const good = sessions.create();
    good.set("n", 1);
    await good.save();
    const forged = `${good.id}.${sessions.create().token.slice(23)}`;
    for (const load of [
      sessions.load.bind(sessions),
      async (t: string, c: object) => sessions.loadNow(t, c),
    ]) {
      expect((await load(good.token, connection))?.get("n")).toBe(1);
      expect((await load(good.token, connection))?.get("n")).toBe(1);
      // A different secret on the same connection is checked afresh and refused.
      expect(await load(forged, connection)).toBeNull();
      expect((await load(good.token, connection))?.get("n")).toBe(1);
    }
    expect(sessions.stats()).toMatchObject({ loaded: 6, forged: 2 });
    // Ended, the remembered token loads nothing: the memo spares the hash, never the store lookup.
    await sessions.end(good.id);
    expect(await sessions.load(good.token, connection)).toBeNull();
    expect(sessions.loadNow(good.token, connection)).toBeNull();
  });
});

describe("values shared with the store (MemoryStore peek)", () => {
  it("copies a value on first read, so changing it never reaches the store", async () => {
    const sessions = make<{ cart: number[]; prefs: { theme: string }; n: number }>();
    const s = sessions.create({ attributes: { cart: [1, 2], prefs: { theme: "dark" }, n: 1 } });
    await s.save();
    const a = (await sessions.load(s.token))!;
    const cart = a.get("cart")!;
    cart.push(3);
    expect(a.get("cart")).toBe(cart);
    expect(a.get("cart")).toEqual([1, 2, 3]);
    const b = (await sessions.load(s.token))!;
    expect(b.get("cart")).toEqual([1, 2]);
    // A commit of another key leaves the unsaved change out of the store.
    a.set("n", 2);
    await sessions.commit(a);
    expect((await sessions.load(s.token))!.get("cart")).toEqual([1, 2]);
    a.set("cart", cart);
    await sessions.commit(a);
    expect((await sessions.load(s.token))!.get("cart")).toEqual([1, 2, 3]);
  });

  it("keeps what a session read even when another commit replaces the value", async () => {
    const sessions = make<{ prefs: { theme: string } }>();
    const s = sessions.create({ attributes: { prefs: { theme: "dark" } } });
    await s.save();
    const a = (await sessions.load(s.token))!;
    const b = (await sessions.load(s.token))!;
    b.set("prefs", { theme: "light" });
    await sessions.commit(b);
    expect(a.get("prefs")).toEqual({ theme: "dark" });
    const set = { theme: "blue" };
    a.set("prefs", set);
    set.theme = "changed after set";
    expect(a.get("prefs")).toEqual({ theme: "blue" });
    expect(a.get("prefs")).toBe(a.get("prefs"));
  });

  it("sets, removals and a login on a loaded session reach the store only through a commit", async () => {
    const sessions = make<{ a: number; b: number; c: number }>();
    const s = sessions.create({ attributes: { a: 1, b: 2 } });
    await s.save();
    for (const loaded of [(await sessions.load(s.token))!, sessions.loadNow(s.token)!]) {
      loaded.set("a", 10);
      loaded.set("c", 3);
      loaded.delete("b");
      loaded.login("u1");
      const stored = await sessions.store.get(s.id);
      expect(stored?.attributes).toEqual({ a: 1, b: 2 });
      expect(stored?.userId).toBeUndefined();
      expect(stored?.version).toBe(1);
    }
  });

  it("hands update() a value of its own", async () => {
    const sessions = make<{ list: number[] }>();
    const s = sessions.create({ attributes: { list: [1] } });
    await s.save();
    const a = (await sessions.load(s.token))!;
    await a.update("list", (list) => {
      list!.push(2);
      return list!;
    });
    expect(a.get("list")).toEqual([1, 2]);
    expect((await sessions.load(s.token))!.get("list")).toEqual([1, 2]);
  });
});

describe("the synchronous lane (MemoryStore)", () => {
  it("loads and commits at once, and leaves the unusual commits to commit()", async () => {
    const sessions = make<{ n: number }>({ rotateEvery: 60_000 });
    const s = sessions.create({ attributes: { n: 1 } });
    await s.save();
    const a = sessions.loadNow(s.token)!;
    expect(a.get("n")).toBe(1);
    expect(sessions.loadNow("junk")).toBeNull();
    a.set("n", 2);
    expect(sessions.commitNow(a)).toBe(true);
    // Written before any await: a second load sees it at once.
    expect(sessions.loadNow(s.token)!.get("n")).toBe(2);
    expect(sessions.commitNow(a)).toBe(false);
    a.login("ada");
    expect(sessions.commitNow(a)).toBeUndefined();
    expect(await sessions.commit(a)).toBe(true);
    const pending = sessions.commit(a);
    a.set("n", 3);
    expect(sessions.commitNow(a)).toBeUndefined();
    await pending;
    a.end();
    expect(sessions.commitNow(a)).toBeUndefined();
  });

  it("is absent on a store without one: loadNow and commitNow answer undefined", async () => {
    // The same memory store, seen through an object that hides its synchronous lane.
    const lean = Object.create(new MemoryStore(), { peekNow: { value: undefined } }) as MemoryStore;
    const sessions = make({ store: lean });
    const s = sessions.create({ attributes: { n: 1 } });
    await s.save();
    expect(sessions.loadNow(s.token)).toBeUndefined();
    const loaded = (await sessions.load(s.token))!;
    loaded.set("n", 2);
    expect(sessions.commitNow(loaded)).toBeUndefined();
    expect(await sessions.commit(loaded)).toBe(true);
    expect((await sessions.load(s.token))!.get("n")).toBe(2);
  });
});

describe("expiry with an injected clock", () => {
  it("enforces the absolute ttl even when the session stays busy", async () => {
    const clock = fakeClock();
    const sessions = make({ clock, ttl: 60 * MIN, idleTimeout: 30 * MIN });
    const s = sessions.create();
    s.set("a", 1);
    await s.save();
    for (let i = 0; i < 5; i++) {
      clock.advance(11 * MIN);
      const loaded = await sessions.load(s.token);
      expect(loaded).not.toBeNull();
      loaded!.set("a", i);
      await sessions.commit(loaded!);
    }
    clock.advance(6 * MIN);
    expect(await sessions.load(s.token)).toBeNull();
    expect(sessions.stats().expired).toBe(1);
  });

  it("enforces the idle timeout and slides it on use", async () => {
    const clock = fakeClock();
    const sessions = make({ clock, idleTimeout: 10 * MIN, touchAfter: MIN });
    const s = sessions.create();
    s.set("a", 1);
    await s.save();
    clock.advance(9 * MIN);
    const loaded = await sessions.load(s.token);
    expect(loaded).not.toBeNull();
    expect(await sessions.commit(loaded!)).toBe(true);
    clock.advance(9 * MIN);
    expect(await sessions.load(s.token)).not.toBeNull();
    clock.advance(11 * MIN);
    expect(await sessions.load(s.token)).toBeNull();
  });

  it("sweep removes only expired records", async () => {
    const store = new MemoryStore();
    const sessions = make({ store, idleTimeout: 10 * MIN });
    const clockB = fakeClock(Date.now() - 20 * MIN);
    const old = createSessions({ store, idleTimeout: 10 * MIN, clock: clockB });
    const stale = old.create();
    stale.set("a", 1);
    await stale.save();
    const live = sessions.create();
    live.set("a", 1);
    await live.save();
    expect(await sessions.sweep()).toBe(1);
    expect(await store.get(stale.id)).toBeUndefined();
    expect(await store.get(live.id)).toBeDefined();
  });
});

describe("a lifetime of its own (remember me)", () => {
  it("lives its lifetime whatever its idleness, through loads, updates and rotation; logout goes back to the defaults", async () => {
    const clock = fakeClock();
    const sessions = make({ clock, idleTimeout: 30 * MIN, rotateEvery: 60 * MIN });
    const session = sessions.create();
    session.login("ada", { lifetime: 30 * 86_400_000 });
    await session.save();
    const stored = await sessions.store.get(session.id);
    expect(stored?.expiresAt).toBe(clock.now() + 30 * 86_400_000);
    expect(stored?.idleExpiresAt).toBe(stored?.expiresAt);
    expect(session.clientToken()?.expiresAt).toBe(stored?.expiresAt);
    // A week of silence, an update, a rotation: still there, and still not idling out.
    clock.advance(7 * 86_400_000);
    const later = await sessions.load(session.token);
    expect(later?.userId).toBe("ada");
    await later!.update("n", () => 1);
    await later!.save();
    const after = await sessions.store.get(later!.id);
    expect(after?.idleExpiresAt).toBe(stored?.expiresAt);
    clock.advance(2 * 86_400_000);
    const again = await sessions.load(later!.token);
    expect(again?.get("n")).toBe(1);
    // Sign out: the blank session that follows has the manager's lifetimes.
    again!.logout();
    again!.set("x", 1);
    await again!.save();
    const blank = await sessions.store.get(again!.id);
    expect(blank?.expiresAt).toBe(clock.now() + sessions.ttl);
    expect(blank?.idleExpiresAt).toBe(clock.now() + 30 * MIN);
    clock.advance(31 * MIN);
    expect(await sessions.load(again!.token)).toBeNull();
  });

  it("a session without one still idles out; a lifetime that is not a positive number of ms up to 400 days is INVALID_VALUE", async () => {
    const clock = fakeClock();
    const sessions = make({ clock, idleTimeout: 30 * MIN });
    const plain = sessions.create();
    plain.set("a", 1);
    await plain.save();
    clock.advance(31 * MIN);
    expect(await sessions.load(plain.token)).toBeNull();
    const session = sessions.create();
    for (const bad of [
      0,
      -1,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      401 * 86_400_000,
      "1" as unknown as number,
    ]) {
      const invalid = expect.objectContaining({ code: "INVALID_VALUE" });
      expect(() => session.setLifetime(bad)).toThrow(invalid);
      expect(() => session.login("x", { lifetime: bad })).toThrow(invalid);
    }
    expect(session.userId).toBeUndefined();
  });
});

describe("writes", () => {
  it("keeps a change made while a commit is in flight for the next commit", async () => {
    const sessions = make();
    const s = sessions.create({ attributes: { a: 1 } });
    await s.save();
    const loaded = (await sessions.load(s.token))!;
    loaded.set("a", 2);
    loaded.setLanguage("fr");
    const first = sessions.commit(loaded);
    loaded.set("b", 3);
    loaded.set("a", 4);
    loaded.setLanguage("de");
    await first;
    const between = (await sessions.load(s.token))!;
    expect([between.get("a"), between.get("b"), between.language]).toEqual([2, undefined, "fr"]);
    expect(await sessions.commit(loaded)).toBe(true);
    const after = (await sessions.load(s.token))!;
    expect([after.get("a"), after.get("b"), after.language]).toEqual([4, 3, "de"]);
  });

  it("refuses values that are not JSON at set, with INVALID_VALUE", () => {
    const s = make().create();
    for (const value of [() => 1, 1n, Symbol("x"), new Date(), Number.NaN]) {
      expect(() => s.set("v", value as never)).toThrowError(
        expect.objectContaining({ code: "INVALID_VALUE" }),
      );
    }
    const cyclic: Record<string, unknown> = {};
    cyclic.me = cyclic;
    expect(() => s.set("v", cyclic as never)).toThrowError(StowageError);
    expect(s.has("v")).toBe(false);
  });

  it("refuses attributes past maxAttributesBytes and loses nothing already stored", async () => {
    const sessions = make({ maxAttributesBytes: 1024 });
    const s = sessions.create();
    s.set("keep", "x".repeat(500));
    await s.save();
    const loaded = await sessions.load(s.token);
    expect(() => loaded!.set("big", "y".repeat(600))).toThrowError(
      expect.objectContaining({ code: "ATTRIBUTES_TOO_LARGE" }),
    );
    await expectCode(
      loaded!.update("big", () => "z".repeat(600)),
      "ATTRIBUTES_TOO_LARGE",
    );
    expect(loaded!.has("big")).toBe(false);
    await sessions.commit(loaded!);
    const again = await sessions.load(s.token);
    expect(again!.get("keep")).toBe("x".repeat(500));
    expect(again!.has("big")).toBe(false);
  });

  it("refuses a loaded session's first write that grows an existing key past the limit", async () => {
    const sessions = make({ maxAttributesBytes: 1024 });
    const s = sessions.create({ attributes: { a: "x".repeat(400), b: "y".repeat(400) } });
    await s.save();
    const loaded = (await sessions.load(s.token))!;
    loaded.set("a", "small");
    const again = (await sessions.load(s.token))!;
    expect(() => again.set("a", "z".repeat(700))).toThrowError(
      expect.objectContaining({ code: "ATTRIBUTES_TOO_LARGE" }),
    );
    expect(again.get("a")).toBe("x".repeat(400));
  });

  it("does not write a new session that holds nothing, nor an unchanged one", async () => {
    const counted = countingStore(new MemoryStore());
    const sessions = make({ store: counted.store });
    const blank = sessions.create();
    expect(await sessions.commit(blank)).toBe(false);
    expect(counted.calls).toEqual([]);
    blank.set("a", 1);
    expect(await sessions.commit(blank)).toBe(true);
    const loaded = await sessions.load(blank.token);
    counted.reset();
    expect(await sessions.commit(loaded!)).toBe(false);
    expect(counted.calls).toEqual([]);
  });

  it("writes only the changed keys", async () => {
    const store = new MemoryStore();
    const sessions = make({ store });
    const s = sessions.create({ attributes: { a: 1, b: 2 } });
    await s.save();
    const loaded = await sessions.load(s.token);
    const seen: unknown[] = [];
    const commit = store.commit.bind(store);
    store.commit = (id, delta, options) => {
      seen.push(delta);
      return commit(id, delta, options);
    };
    loaded!.set("b", 3);
    loaded!.delete("a");
    await sessions.commit(loaded!);
    expect(seen).toEqual([{ set: { b: 3 }, unset: ["a"], meta: { idleExpiresAt: expect.any(Number) } }]);
  });

  it("throttles the idle refresh of an unchanged session", async () => {
    const clock = fakeClock();
    const counted = countingStore(new MemoryStore());
    const sessions = make({ store: counted.store, clock, idleTimeout: 30 * MIN, touchAfter: MIN });
    const s = sessions.create({ attributes: { a: 1 } });
    await s.save();
    counted.reset();
    clock.advance(10_000);
    await sessions.commit((await sessions.load(s.token))!);
    expect(counted.calls).toEqual(["get"]);
    clock.advance(MIN);
    await sessions.commit((await sessions.load(s.token))!);
    expect(counted.calls).toEqual(["get", "get", "touch"]);
  });

  it("keeps a copy: mutating a value after set does not change the session", async () => {
    const sessions = make();
    const s = sessions.create();
    const cart = ["a"];
    s.set("cart", cart);
    cart.push("b");
    expect(s.get("cart")).toEqual(["a"]);
  });
});

describe("a new session's values on their way to the store", () => {
  it("go as the JSON text they were checked as (insertEncoded), primitives as values", async () => {
    const inserted: unknown[][] = [];
    const memory = new MemoryStore();
    const store = new Proxy(memory, {
      get(target, key, receiver) {
        const value = Reflect.get(target, key, receiver);
        if (key !== "insertEncoded" || typeof value !== "function") return value;
        return (...args: unknown[]) => {
          inserted.push(structuredClone(args));
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const sessions = make({ store });
    const s = sessions.create();
    const cart = [{ sku: "A1", qty: 2 }];
    s.set("cart", cart).set("count", 3).set("__proto__", { own: true });
    cart[0]!.qty = 9;
    expect(s.get("count")).toBe(3);
    await s.save();
    expect(inserted).toHaveLength(1);
    const [record, encoded] = inserted[0] as [{ attributes: object }, Record<string, string>];
    expect(record.attributes).toEqual({ count: 3 });
    expect(encoded.cart).toBe('[{"sku":"A1","qty":2}]');
    expect(Object.getOwnPropertyDescriptor(encoded, "__proto__")?.value).toBe('{"own":true}');
    const loaded = (await sessions.load(s.token))!;
    expect(loaded.get("cart")).toEqual([{ sku: "A1", qty: 2 }]);
    expect(loaded.get("__proto__")).toEqual({ own: true });
    // The session that wrote them reads its own values back as copies, parsed on first read.
    const first = s.get("cart") as { qty: number }[];
    expect(first).toEqual([{ sku: "A1", qty: 2 }]);
    first[0]!.qty = 5;
    expect(s.get("cart")).toBe(first);
  });

  it("written while the insert is in flight, are kept for the next commit", async () => {
    const sessions = make();
    const s = sessions.create();
    s.set("a", { x: 1 });
    const saving = s.save();
    s.set("b", { y: 2 }).set("c", 3).setLanguage("fr");
    expect(await saving).toBe(true);
    expect(await s.save()).toBe(true);
    const loaded = (await sessions.load(s.token))!;
    expect(loaded.get("a")).toEqual({ x: 1 });
    expect(loaded.get("b")).toEqual({ y: 2 });
    expect(loaded.get("c")).toBe(3);
    expect(loaded.language).toBe("fr");
  });

  it("are parsed into insert's record for a store without insertEncoded", async () => {
    const memory = new MemoryStore();
    const store = new Proxy(memory, {
      get: (target, key, receiver) =>
        key === "insertEncoded" ? undefined : Reflect.get(target, key, receiver),
    });
    const sessions = make({ store });
    const s = sessions.create();
    s.set("cart", ["a", { b: [1] }]).set("n", 1);
    await s.save();
    const stored = await memory.get((await sessions.load(s.token))!.id);
    expect(stored?.attributes).toEqual({ cart: ["a", { b: [1] }], n: 1 });
  });
});

describe("identity", () => {
  it("login regenerates: new token at once, old token dead, flags hold for that commit only", async () => {
    const sessions = make();
    const s = sessions.create({ attributes: { cart: 1 } });
    await s.save();
    expect(s.isNew).toBe(true);
    const before = s.token;
    const loaded = (await sessions.load(before))!;
    expect(loaded.isNew).toBe(false);
    loaded.login("alice", { level: PermissionLevel.SUPERVISOR });
    expect(loaded.token).not.toBe(before);
    expect(loaded.isJustLoggedIn).toBe(true);
    expect(loaded.oldId).toBe(s.id);
    await sessions.commit(loaded);
    expect(loaded.isJustLoggedIn).toBe(true);
    expect(await sessions.load(before)).toBeNull();
    loaded.set("x", 1);
    await sessions.commit(loaded);
    expect(loaded.isJustLoggedIn).toBe(false);
    expect(loaded.oldId).toBeUndefined();
    const after = (await sessions.load(loaded.token))!;
    expect(after.userId).toBe("alice");
    expect(after.level).toBe(175);
    expect(after.lastLoginType).toBe("human");
    expect(after.get("cart")).toBe(1);
    expect(after.isJustLoggedIn).toBe(false);
    expect(sessions.stats().regenerated).toBe(1);
  });

  it("logout drops the stored session and starts blank under a new id", async () => {
    const sessions = make();
    const s = sessions.create({ attributes: { a: 1 }, language: "fr" });
    s.login("bob");
    await s.save();
    const loaded = (await sessions.load(s.token))!;
    loaded.logout();
    expect(loaded.userId).toBeUndefined();
    expect(loaded.keys()).toEqual([]);
    expect(loaded.language).toBe("fr");
    await sessions.commit(loaded);
    expect(await sessions.load(s.token)).toBeNull();
    expect(await sessions.load(loaded.token)).toBeNull();
    loaded.set("flash", "bye");
    await sessions.commit(loaded);
    expect((await sessions.load(loaded.token))!.get("flash")).toBe("bye");
  });

  it("rejects bad login input", () => {
    const s = make().create();
    expect(() => s.login("")).toThrowError(expect.objectContaining({ code: "INVALID_VALUE" }));
    expect(() => s.login("u", { level: 256 })).toThrowError(
      expect.objectContaining({ code: "INVALID_VALUE" }),
    );
  });

  it("end removes the session and further writes fail with SESSION_ENDED", async () => {
    const sessions = make();
    const ended: string[] = [];
    sessions.on("ended", (e) => ended.push(e.id));
    const s = sessions.create({ attributes: { a: 1 } });
    await s.save();
    const loaded = (await sessions.load(s.token))!;
    loaded.end();
    expect(loaded.isEnded).toBe(true);
    expect(() => loaded.set("a", 2)).toThrowError(expect.objectContaining({ code: "SESSION_ENDED" }));
    await sessions.commit(loaded);
    expect(await sessions.load(s.token)).toBeNull();
    expect(ended).toEqual([s.id]);
    expect(sessions.stats().ended).toBe(1);
  });
});

describe("users", () => {
  it("lists a user's sessions without secrets and ends all but one", async () => {
    const sessions = make();
    const tokens: string[] = [];
    for (let i = 0; i < 3; i++) {
      const s = sessions.create({ attributes: { device: `d${i}` } });
      s.login("carol");
      void s.csrfToken;
      await s.save();
      tokens.push(s.token);
    }
    const list = await sessions.listForUser("carol");
    expect(list.map((i) => i.attributes.device)).toEqual(["d0", "d1", "d2"]);
    expect(JSON.stringify(list)).not.toMatch(/verifier|stowage\.csrf/);
    const keep = list[1]!.id;
    expect(await sessions.endAllForUser("carol", { except: keep })).toBe(2);
    expect((await sessions.listForUser("carol")).map((i) => i.id)).toEqual([keep]);
    expect(await sessions.load(tokens[0])).toBeNull();
    expect(await sessions.load(tokens[1])).not.toBeNull();
  });

  it("tells another manager on the same store that a session ended", async () => {
    const store = new MemoryStore();
    const a = make({ store });
    const b = createSessions({ store });
    const remote: { id: string; remote?: boolean }[] = [];
    b.on("ended", (e) => remote.push(e));
    const s = a.create({ attributes: { a: 1 } });
    await s.save();
    await new Promise((r) => setTimeout(r, 20));
    await a.end(s.id);
    await expect.poll(() => remote).toEqual([{ id: s.id, remote: true }]);
  });
});

describe("leases, CSRF and channels", () => {
  it("acquire is exclusive across sessions objects, times out, and releases with await using", async () => {
    const sessions = make();
    const s = sessions.create({ attributes: { a: 1 } });
    await s.save();
    const other = (await sessions.load(s.token))!;
    const lease = await s.acquire({ leaseMs: 5_000 });
    await expectCode(other.acquire({ waitMs: 50 }), "LOCK_TIMEOUT");
    await lease.release();
    {
      await using held = await other.acquire({ waitMs: 50 });
      expect(held.fence).toBeGreaterThan(lease.fence);
      await expectCode(s.acquire({ waitMs: 20 }), "LOCK_TIMEOUT");
    }
    const third = await s.acquire({ waitMs: 50 });
    await third.release();
  });

  it("issues a CSRF token that verifies in constant time and survives rotation", async () => {
    const sessions = make({ rotateEvery: 1, rotationGraceMs: 1_000 });
    const s = sessions.create();
    const csrf = s.csrfToken;
    expect(csrf).toHaveLength(43);
    expect(s.keys()).toEqual([]);
    await s.save();
    await new Promise((r) => setTimeout(r, 5));
    const loaded = (await sessions.load(s.token))!;
    await sessions.commit(loaded);
    expect(loaded.token).not.toBe(s.token);
    const again = (await sessions.load(loaded.token))!;
    expect(again.verifyCsrf(csrf)).toBe(true);
    expect(again.verifyCsrf(`${csrf.slice(0, -1)}A`)).toBe(csrf.endsWith("A"));
    expect(again.verifyCsrf(undefined)).toBe(false);
    expect(() => again.set("$stowage.csrf" as never, "x" as never)).toThrowError(/reserved/);
  });

  it("gives a new CSRF token at login", async () => {
    const sessions = make();
    const s = sessions.create();
    const before = s.csrfToken;
    await s.save();
    const loaded = (await sessions.load(s.token))!;
    loaded.login("dave");
    await sessions.commit(loaded);
    const after = (await sessions.load(loaded.token))!;
    expect(after.verifyCsrf(before)).toBe(false);
    expect(after.csrfToken).not.toBe(before);
  });

  it("seals channel keys with the key ring and needs one", async () => {
    const keys = [{ id: "k1", key: KeyRing.generateKey() }];
    const store = new MemoryStore();
    const sessions = make({ store, keys });
    const s = sessions.create();
    const secret = Buffer.from("0123456789abcdef0123456789abcdef");
    s.setChannel({ algorithm: "x25519-chacha20poly1305", secret });
    await s.save();
    const raw = await store.get(s.id);
    expect(JSON.stringify(raw)).not.toContain(secret.toString("base64url"));
    const loaded = (await sessions.load(s.token))!;
    expect(loaded.getChannel()).toEqual({ algorithm: "x25519-chacha20poly1305", secret });
    expect(() => make().create().setChannel({ algorithm: "a", secret })).toThrowError(
      expect.objectContaining({ code: "CONFIG_INVALID" }),
    );
  });

  it("refuses bad options with CONFIG_INVALID", () => {
    expect(() => make({ ttl: -1 })).toThrowError(expect.objectContaining({ code: "CONFIG_INVALID" }));
    expect(() => make({ idleTimeout: Number.NaN })).toThrowError(/idleTimeout/);
    expect(() => make({ keys: [] })).toThrowError(/at least one key/);
  });

  it("counts conflicts when parallel updates race", async () => {
    const sessions = make();
    const s = sessions.create({ attributes: { n: 0 } });
    await s.save();
    const conflicts: number[] = [];
    sessions.on("conflict", (e) => conflicts.push(e.attempt));
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        const l = (await sessions.load(s.token))!;
        await l.update("n", (n) => ((n as number) ?? 0) + 1);
      }),
    );
    expect((await sessions.load(s.token))!.get("n")).toBe(20);
    expect(sessions.stats().conflicts).toBe(conflicts.length);
  });
});
