import type { StoreEvent } from "../core/store.js";
import { makeRecord, newUserId, type StoreGetter, waitFor } from "./helpers.js";
import type { ConformanceRunner } from "./runner.js";

export function eventTests({ it, expect }: ConformanceRunner, getStore: StoreGetter): void {
  it("a subscriber receives a published event", async () => {
    const store = getStore();
    const received: StoreEvent[] = [];
    const unsubscribe = await store.subscribe((event) => received.push(event));
    try {
      const event: StoreEvent = { type: "ended", id: makeRecord().id, at: Date.now() };
      await store.publish(event);
      const mine = await waitFor(() => received.find((e) => e.id === event.id), 2000, "event delivery");
      expect(mine).toEqual(event);
    } finally {
      await unsubscribe();
    }
  });

  it("every field of an event arrives intact", async () => {
    const store = getStore();
    const received: StoreEvent[] = [];
    const unsubscribe = await store.subscribe((event) => received.push(event));
    try {
      const event: StoreEvent = {
        type: "replaced",
        id: makeRecord().id,
        userId: newUserId(),
        connection: { id: "conn-1", node: "node-ü", generation: 3, received: 12, key: "k12" },
        at: Date.now(),
      };
      await store.publish(event);
      const revoked: StoreEvent = { type: "revoked", id: makeRecord().id, at: Date.now() };
      await store.publish(revoked);
      const outbox: StoreEvent = { type: "outbox", id: makeRecord().id, at: Date.now(), origin: "n-2" };
      await store.publish(outbox);
      expect(await waitFor(() => received.find((e) => e.id === outbox.id), 2000, "outbox")).toEqual(outbox);
      expect(await waitFor(() => received.find((e) => e.id === event.id), 2000, "replaced")).toEqual(event);
      expect(await waitFor(() => received.find((e) => e.id === revoked.id), 2000, "revoked")).toEqual(
        revoked,
      );
    } finally {
      await unsubscribe();
    }
  });

  it("after unsubscribe a listener receives no more events", async () => {
    const store = getStore();
    const stayed: StoreEvent[] = [];
    const left: StoreEvent[] = [];
    const unsubscribeStayed = await store.subscribe((event) => stayed.push(event));
    const unsubscribeLeft = await store.subscribe((event) => left.push(event));
    try {
      const first: StoreEvent = { type: "ended", id: makeRecord().id, at: Date.now() };
      await store.publish(first);
      await waitFor(() => left.some((e) => e.id === first.id), 2000, "first event");
      await unsubscribeLeft();
      const second: StoreEvent = { type: "ended", id: makeRecord().id, at: Date.now() };
      await store.publish(second);
      // The listener that stayed proves the event went out; the one that left must not have it.
      await waitFor(() => stayed.some((e) => e.id === second.id), 2000, "second event");
      expect(left.some((e) => e.id === second.id)).toBe(false);
    } finally {
      await unsubscribeStayed();
    }
  });

  it("a listener that throws is reported as a StowageWarning; the other listeners still get the event", async () => {
    const store = getStore();
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => {
      if (warning.name === "StowageWarning") warnings.push(warning);
    };
    process.on("warning", onWarning);
    const received: StoreEvent[] = [];
    const unsubscribeBad = await store.subscribe(() => {
      throw new Error("listener bug");
    });
    const unsubscribeGood = await store.subscribe((event) => received.push(event));
    try {
      const event: StoreEvent = { type: "ended", id: makeRecord().id, at: Date.now() };
      await store.publish(event);
      await waitFor(() => received.some((e) => e.id === event.id), 2000, "event to the good listener");
      await waitFor(() => warnings.length > 0, 2000, "the warning");
      expect(warnings[0]!.message).toContain("listener bug");
      expect((warnings[0] as Error & { code?: string }).code).toBe("STOWAGE_LISTENER_THREW");
      // The store still works after the throw: the next event arrives too.
      const next: StoreEvent = { type: "revoked", id: makeRecord().id, at: Date.now() };
      await store.publish(next);
      await waitFor(() => received.some((e) => e.id === next.id), 2000, "the next event");
    } finally {
      process.off("warning", onWarning);
      await unsubscribeBad();
      await unsubscribeGood();
    }
  });
}
