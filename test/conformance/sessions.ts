import { expect, it } from "vitest";
import { Sessions } from "../../src/core/manager.js";
import type { StoreGetter } from "./helpers.js";
import { sleep } from "./helpers.js";

/** The manager on this store: what the "nothing lost" and regeneration rules promise end to end. */
export function sessionTests(getStore: StoreGetter): void {
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
