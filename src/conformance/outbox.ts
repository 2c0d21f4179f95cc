import type { OutboxLimits } from "../core/store.js";
import { expectCode, makeRecord, type StoreGetter, sleep } from "./helpers.js";
import type { ConformanceRunner } from "./runner.js";

const ROOMY: OutboxLimits = { maxMessages: 1000, maxBytes: 1 << 20 };

export function outboxTests({ it, expect }: ConformanceRunner, getStore: StoreGetter): void {
  async function stored(overrides = {}) {
    const record = makeRecord(overrides);
    await getStore().insert(record);
    return record.id;
  }

  it("appends number messages from 1 on; a read after n gives the rest in order", async () => {
    const store = getStore();
    const id = await stored();
    expect(await store.outboxAppend(id, ["a", "b"], ROOMY)).toBe(2);
    expect(await store.outboxAppend(id, ["c"], ROOMY)).toBe(3);
    const all = await store.outboxRead(id, 0);
    expect(all).toEqual({
      messages: [
        { seq: 1, data: "a" },
        { seq: 2, data: "b" },
        { seq: 3, data: "c" },
      ],
      last: 3,
      droppedThrough: 0,
    });
    expect((await store.outboxRead(id, 2)).messages).toEqual([{ seq: 3, data: "c" }]);
    expect((await store.outboxRead(id, 3)).messages).toEqual([]);
    expect((await store.outboxRead(id, 0, 2)).messages.map((m) => m.seq)).toEqual([1, 2]);
  });

  it("keeps a message's text exactly: JSON, quotes, newlines, astral characters, 64 KiB", async () => {
    const store = getStore();
    const id = await stored();
    const texts = [
      JSON.stringify({ t: "m", d: { 'ü"\\': ["😀", "\n\t", 1.5e300] } }),
      "'; DROP TABLE x; --",
      "x".repeat(64 * 1024),
      "",
    ];
    await store.outboxAppend(id, texts, ROOMY);
    expect((await store.outboxRead(id, 0)).messages.map((m) => m.data)).toEqual(texts);
  });

  it("trim removes through a sequence number and leaves the numbering alone", async () => {
    const store = getStore();
    const id = await stored();
    await store.outboxAppend(id, ["1", "2", "3", "4"], ROOMY);
    await store.outboxTrim(id, 2);
    const page = await store.outboxRead(id, 0);
    expect(page.messages.map((m) => m.seq)).toEqual([3, 4]);
    expect(page.droppedThrough).toBe(0);
    await store.outboxTrim(id, 10);
    expect(await store.outboxRead(id, 0)).toEqual({ messages: [], last: 4, droppedThrough: 0 });
    expect(await store.outboxAppend(id, ["5"], ROOMY)).toBe(5);
    expect((await store.outboxRead(id, 0)).messages).toEqual([{ seq: 5, data: "5" }]);
  });

  it("past maxMessages the oldest go, and droppedThrough says how far", async () => {
    const store = getStore();
    const id = await stored();
    const limits = { maxMessages: 3, maxBytes: 1 << 20 };
    await store.outboxAppend(id, ["1", "2"], limits);
    await store.outboxAppend(id, ["3", "4", "5"], limits);
    const page = await store.outboxRead(id, 0);
    expect(page.messages.map((m) => m.data)).toEqual(["3", "4", "5"]);
    expect(page.droppedThrough).toBe(2);
    expect(page.last).toBe(5);
  });

  it("past maxBytes (UTF-8 bytes) the oldest go", async () => {
    const store = getStore();
    const id = await stored();
    // "é" is 2 bytes: three of them are 6 bytes, over a bound of 5.
    const limits = { maxMessages: 100, maxBytes: 5 };
    await store.outboxAppend(id, ["é", "é"], limits);
    expect((await store.outboxRead(id, 0)).droppedThrough).toBe(0);
    await store.outboxAppend(id, ["é"], limits);
    const page = await store.outboxRead(id, 0);
    expect(page.messages.map((m) => m.seq)).toEqual([2, 3]);
    expect(page.droppedThrough).toBe(1);
    // Trimming frees bytes: after it, two more fit again.
    await store.outboxTrim(id, 3);
    await store.outboxAppend(id, ["é", "é"], limits);
    const after = await store.outboxRead(id, 0);
    expect(after.messages.map((m) => m.seq)).toEqual([4, 5]);
    expect(after.droppedThrough).toBe(1);
  });

  it("parallel appends get distinct, consecutive numbers and lose nothing", async () => {
    const store = getStore();
    const id = await stored();
    const lasts = await Promise.all(
      Array.from({ length: 40 }, (_, i) => store.outboxAppend(id, [`${i}a`, `${i}b`], ROOMY)),
    );
    expect(new Set(lasts).size).toBe(40);
    const page = await store.outboxRead(id, 0);
    expect(page.messages.map((m) => m.seq)).toEqual(Array.from({ length: 80 }, (_, i) => i + 1));
    // Each batch is kept together, in its own order.
    for (const last of lasts) {
      const a = page.messages[last - 2]!.data;
      expect(page.messages[last - 1]!.data).toBe(a.replace("a", "b"));
    }
  });

  it("an unknown session: append is SESSION_ENDED, read is empty, trim does nothing", async () => {
    const store = getStore();
    const id = makeRecord().id;
    await expectCode(store.outboxAppend(id, ["x"], ROOMY), "SESSION_ENDED");
    expect(await store.outboxRead(id, 0)).toEqual({ messages: [], last: 0, droppedThrough: 0 });
    await store.outboxTrim(id, 5);
    expect(await store.get(id)).toBeUndefined();
  });

  it("the outbox goes with its record: delete, consume, deleteByUser, and a new record of the same id starts empty", async () => {
    const store = getStore();
    const userId = `user-${makeRecord().id}`;
    const ids = [await stored(), await stored(), await stored({ userId })];
    for (const id of ids) await store.outboxAppend(id, ["kept?"], ROOMY);
    await store.delete(ids[0]!);
    await store.consume(ids[1]!, () => true);
    await store.deleteByUser(userId);
    for (const id of ids) {
      expect(await store.outboxRead(id, 0)).toEqual({ messages: [], last: 0, droppedThrough: 0 });
      await store.insert(makeRecord({ id }));
      expect(await store.outboxRead(id, 0)).toEqual({ messages: [], last: 0, droppedThrough: 0 });
      expect(await store.outboxAppend(id, ["fresh"], ROOMY)).toBe(1);
    }
  });

  it("the outbox of an expired record is gone with it", async () => {
    const store = getStore();
    const now = Date.now();
    const id = await stored({ idleExpiresAt: now + 300 });
    await store.outboxAppend(id, ["soon gone"], ROOMY);
    await sleep(450);
    await store.sweep(Date.now());
    expect((await store.outboxRead(id, 0)).messages).toEqual([]);
    await expectCode(store.outboxAppend(id, ["late"], ROOMY), "SESSION_ENDED");
  });

  it("commits, touches and a consume that declines keep the outbox", async () => {
    const store = getStore();
    const id = await stored();
    await store.outboxAppend(id, ["stay"], ROOMY);
    await store.commit(id, { set: { n: 1 } });
    await store.touch(id, Date.now() + 60_000);
    await store.consume(id, () => false);
    expect((await store.outboxRead(id, 0)).messages).toEqual([{ seq: 1, data: "stay" }]);
  });
}
