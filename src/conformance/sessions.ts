import { Sessions } from "../core/manager.js";
import type { StoreGetter } from "./helpers.js";
import { expectCode, newUserId, sleep, thrownCode } from "./helpers.js";
import type { ConformanceRunner } from "./runner.js";

/** The manager on this store: what the "nothing lost" and regeneration rules promise end to end. */
export function sessionTests({ it, expect }: ConformanceRunner, getStore: StoreGetter): void {
  // The manager is made per test but must not close the shared store.
  const manager = (options: ConstructorParameters<typeof Sessions>[1] = {}) =>
    new Sessions<{ n: number } & Record<string, number>>(getStore(), options);

  it("200 parallel update()s through separate load()s of one token end at exactly 200", async () => {
    const sessions = manager();
    const first = sessions.create();
    await first.save();
    await Promise.all(
      Array.from({ length: 200 }, async () => {
        const session = await sessions.load(first.token);
        expect(session).not.toBeNull();
        await session!.update("n", (n) => (n ?? 0) + 1);
      }),
    );
    const after = await sessions.load(first.token);
    expect(after!.get("n")).toBe(200);
  });

  it("200 parallel loads that each set their own key leave all 200 keys", async () => {
    const sessions = manager();
    const first = sessions.create();
    await first.save();
    await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const session = await sessions.load(first.token);
        session!.set(`k${i}`, i);
        await sessions.commit(session!);
      }),
    );
    const after = await sessions.load(first.token);
    expect(after!.keys()).toHaveLength(200);
    for (let i = 0; i < 200; i++) expect(after!.get(`k${i}`)).toBe(i);
  });

  it("login regenerates with no grace: the pre-login token no longer loads", async () => {
    const sessions = manager();
    const session = sessions.create();
    session.set("n", 1);
    await session.save();
    const planted = session.token;
    const loaded = await sessions.load(planted);
    loaded!.login("alice");
    expect(loaded!.isJustLoggedIn).toBe(true);
    await sessions.commit(loaded!);
    expect(loaded!.oldId).toBe(session.id);
    expect(await sessions.load(planted)).toBeNull();
    const after = await sessions.load(loaded!.token);
    expect(after!.userId).toBe("alice");
    expect(after!.get("n")).toBe(1);
    expect(after!.isJustLoggedIn).toBe(false);
  });

  it("routine rotation keeps the old token working for the grace window only", async () => {
    const sessions = manager({ rotateEvery: 50, rotationGraceMs: 400 });
    const session = sessions.create();
    session.set("n", 1);
    await session.save();
    const oldToken = session.token;
    await sleep(80);
    const loaded = await sessions.load(oldToken);
    loaded!.set("m", 2);
    await sessions.commit(loaded!);
    expect(loaded!.token).not.toBe(oldToken);
    const viaAlias = await sessions.load(oldToken);
    expect(viaAlias!.get("m")).toBe(2);
    viaAlias!.set("k", 3);
    await sessions.commit(viaAlias!);
    const current = await sessions.load(loaded!.token);
    expect(current!.get("k")).toBe(3);
    await sleep(600);
    expect(await sessions.load(oldToken)).toBeNull();
    expect(await sessions.load(loaded!.token)).not.toBeNull();
  });
}

/** What the manager promises while ids are renamed under requests in flight (the grace window). */
export function renameRaceTests({ it, expect }: ConformanceRunner, getStore: StoreGetter): void {
  const manager = (options: ConstructorParameters<typeof Sessions>[1] = {}) =>
    new Sessions<Record<string, number>>(getStore(), options);

  it("update()s and writes in flight while routine rotation renames the id all succeed; nothing is lost", async () => {
    const sessions = manager({ rotateEvery: 150, rotationGraceMs: 20_000 });
    const first = sessions.create();
    first.set("n", 0);
    await first.save();
    await sleep(200);
    // Every request below carries the old token, loads before the rename and commits (so rotates) after.
    const outcomes = await Promise.allSettled(
      Array.from({ length: 60 }, async (_, i) => {
        const session = await sessions.load(first.token);
        if (!session) throw new Error("the old token loaded nothing inside the grace window");
        await session.update("n", (n) => (n ?? 0) + 1);
        session.set(`k${i}`, i);
        await sessions.commit(session);
      }),
    );
    expect(outcomes.filter((o) => o.status === "rejected")).toEqual([]);
    const after = await sessions.load(first.token);
    expect(after!.id).not.toBe(first.id);
    expect(after!.get("n")).toBe(60);
    for (let i = 0; i < 60; i++) expect(after!.get(`k${i}`)).toBe(i);
  });

  it("regenerateId({ graceMs }) racing 40 parallel update()s: every update lands once, old and new token load", async () => {
    const sessions = manager();
    const first = sessions.create();
    first.set("n", 0);
    await first.save();
    const loaded = await Promise.all(Array.from({ length: 40 }, () => sessions.load(first.token)));
    const regenerating = await sessions.load(first.token);
    regenerating!.regenerateId({ graceMs: 20_000 });
    const [renamed, ...updates] = await Promise.allSettled([
      regenerating!.save(),
      ...loaded.map((session) => session!.update("n", (n) => (n ?? 0) + 1)),
    ]);
    expect(renamed.status).toBe("fulfilled");
    expect(updates.filter((o) => o.status === "rejected")).toEqual([]);
    const byNew = await sessions.load(regenerating!.token);
    expect(byNew!.get("n")).toBe(40);
    expect((await sessions.load(first.token))!.get("n")).toBe(40);
  });
}

/** Attribute names are data: nothing inherited from Object.prototype reads as an attribute. */
export function ownAttributeTests({ it, expect }: ConformanceRunner, getStore: StoreGetter): void {
  const sessions = () => new Sessions<Record<string, unknown>>(getStore());
  const INHERITED = ["constructor", "toString", "hasOwnProperty", "valueOf", "__proto__"] as const;

  it("get, has, keys and update see own attributes only, new or loaded", async () => {
    const manager = sessions();
    const session = manager.create();
    session.set("x", 1);
    await session.save();
    const loaded = await manager.load(session.token);
    for (const s of [session, loaded!]) {
      for (const name of INHERITED) {
        expect(s.get(name), name).toBeUndefined();
        expect(s.has(name), name).toBe(false);
      }
      expect(s.keys()).toEqual(["x"]);
    }
    const seen: unknown[] = [];
    await loaded!.update("toString", (current) => {
      seen.push(current);
      return 7;
    });
    expect(seen).toEqual([undefined]);
    expect((await manager.load(session.token))!.get("toString")).toBe(7);
  });

  it("values stored under inherited names round-trip through the store and listForUser", async () => {
    const manager = sessions();
    const user = newUserId();
    const session = manager.create();
    for (const name of INHERITED) session.set(name, { name });
    session.login(user);
    await session.save();
    const loaded = await manager.load(session.token);
    for (const name of INHERITED) {
      expect(loaded!.get(name), name).toEqual({ name });
      expect(loaded!.has(name), name).toBe(true);
    }
    expect(loaded!.keys().sort()).toEqual([...INHERITED].sort());
    loaded!.delete("constructor");
    await loaded!.save();
    const again = await manager.load(session.token);
    expect(again!.get("constructor")).toBeUndefined();
    expect(again!.get("toString")).toEqual({ name: "toString" });
    const [listed] = await manager.listForUser(user);
    expect(Object.keys(listed!.attributes).sort()).toEqual(
      INHERITED.filter((n) => n !== "constructor").sort(),
    );
    expect(Object.hasOwn(listed!.attributes, "constructor")).toBe(false);
    expect(listed!.attributes.toString).toEqual({ name: "toString" });
  });
}

/** Text that is not well-formed UTF-16 is refused in core, so every store keeps text exactly. */
export function wellFormedTextTests({ it, expect }: ConformanceRunner, getStore: StoreGetter): void {
  const sessions = () => new Sessions<Record<string, unknown>>(getStore());
  const LONE = ["\ud800", "a\udc00b", "x\ud83d", "nul\u0000"];

  it("a lone surrogate or U+0000 in a key, a value, a user id or a language is INVALID_VALUE and changes nothing", async () => {
    const manager = sessions();
    const session = manager.create();
    session.set("ok", 1);
    for (const text of LONE) {
      expect(thrownCode(() => session.set(text, 1))).toBe("INVALID_VALUE");
      expect(thrownCode(() => session.set("v", text))).toBe("INVALID_VALUE");
      expect(thrownCode(() => session.set("v", { [text]: 1 }))).toBe("INVALID_VALUE");
      expect(thrownCode(() => session.set("v", ["fine", [text]]))).toBe("INVALID_VALUE");
      expect(thrownCode(() => session.login(text))).toBe("INVALID_VALUE");
      expect(thrownCode(() => session.setLanguage(text))).toBe("INVALID_VALUE");
    }
    await session.save();
    const loaded = await manager.load(session.token);
    expect(loaded!.keys()).toEqual(["ok"]);
    expect(loaded!.userId).toBeUndefined();
    await expectCode(
      loaded!.update("\ud800", () => 1),
      "INVALID_VALUE",
    );
    await expectCode(
      loaded!.update("v", () => "\udfff"),
      "INVALID_VALUE",
    );
    expect((await manager.load(session.token))!.keys()).toEqual(["ok"]);
  });

  it("well-formed text of every plane round-trips exactly: keys, values, user ids", async () => {
    const manager = sessions();
    const text = "é中😀\u{10ffff}\ufffd\u0001\u007f";
    const user = `${newUserId()}${text}`;
    const session = manager.create();
    session.set(text, { [text]: [text] });
    session.login(user);
    await session.save();
    const loaded = await manager.load(session.token);
    expect(loaded!.get(text)).toEqual({ [text]: [text] });
    expect(loaded!.userId).toBe(user);
    expect((await manager.listForUser(user)).map((s) => s.id)).toEqual([session.id]);
    loaded!.delete(text);
    await loaded!.save();
    expect((await manager.load(session.token))!.keys()).toEqual([]);
    expect(await manager.endAllForUser(user)).toBe(1);
    expect(await manager.load(session.token)).toBeNull();
  });

  it("listForUser and endAllForUser with a lone surrogate find nobody, not the user spelt with U+FFFD", async () => {
    const manager = sessions();
    const base = newUserId();
    const session = manager.create();
    session.login(`${base}\ufffd`);
    await session.save();
    expect(await manager.listForUser(`${base}\ud800`)).toEqual([]);
    expect(await manager.endAllForUser(`${base}\ud800`)).toBe(0);
    expect(await manager.load(session.token)).not.toBeNull();
    expect(await manager.listForUser(`${base}\ufffd`)).toHaveLength(1);
  });

  it("end() of an id that cannot exist is false, on every store", async () => {
    const manager = sessions();
    for (const id of ["\u0000", "", "\ud800", "x".repeat(10_000), "a\u0000b", "%", "{x}"]) {
      expect(await manager.end(id), JSON.stringify(id.slice(0, 8))).toBe(false);
    }
  });
}
