import type { OutboxLimits, OutboxMessage, OutboxPage } from "../../core/store.js";

/**
 * One session's outbox in memory: messages in a ring of consecutive sequence numbers, so an append, a
 * trim and the read after a sequence number each cost only the messages they touch.
 */
export class Outbox {
  /** Kept messages, oldest first, from index `head`; `data[head].seq === first`. */
  #messages: OutboxMessage[] = [];
  #head = 0;
  #last = 0;
  #dropped = 0;
  #bytes = 0;

  get #count(): number {
    return this.#messages.length - this.#head;
  }

  append(texts: string[], limits: OutboxLimits): number {
    for (const data of texts) {
      this.#messages.push({ seq: ++this.#last, data });
      this.#bytes += Buffer.byteLength(data);
    }
    while (this.#count > 0 && (this.#count > limits.maxMessages || this.#bytes > limits.maxBytes)) {
      this.#dropped = this.#shift().seq;
    }
    this.#compact();
    return this.#last;
  }

  read(after: number, limit = Number.POSITIVE_INFINITY): OutboxPage {
    const count = this.#count;
    const first = this.#last - count + 1;
    const from = this.#head + Math.max(0, Math.floor(after) + 1 - first);
    const to = Math.min(this.#messages.length, from + Math.max(0, limit));
    const messages: OutboxMessage[] = [];
    for (let i = from; i < to; i++) messages.push({ ...this.#messages[i]! });
    return { messages, last: this.#last, droppedThrough: this.#dropped };
  }

  trim(through: number): void {
    while (this.#count > 0 && this.#messages[this.#head]!.seq <= through) this.#shift();
    this.#compact();
  }

  #shift(): OutboxMessage {
    const message = this.#messages[this.#head]!;
    this.#messages[this.#head++] = undefined as unknown as OutboxMessage;
    this.#bytes -= Buffer.byteLength(message.data);
    return message;
  }

  /** Drops the vacated front of the array once it is the larger part, so memory follows what is kept. */
  #compact(): void {
    if (this.#head > 32 && this.#head * 2 > this.#messages.length) {
      this.#messages = this.#messages.slice(this.#head);
      this.#head = 0;
    }
  }
}
