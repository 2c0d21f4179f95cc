import { expect, it } from "vitest";
import type { StoreEvent } from "../../src/stores/types.js";
import { makeRecord, newUserId, type StoreGetter, waitFor } from "./helpers.js";

export function eventTests(getStore: StoreGetter): void {
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
        connection: { id: "conn-1", node: "node-ü" },
        at: Date.now(),
      };
      await store.publish(event);
      const revoked: StoreEvent = { type: "revoked", id: makeRecord().id, at: Date.now() };
      await store.publish(revoked);
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
}
