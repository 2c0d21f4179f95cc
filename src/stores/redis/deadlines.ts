import { performance } from "node:perf_hooks";

/** One tracked operation: `expired` turns true when its deadline passed before it settled. */
export interface Deadline {
  /** True once the deadline passed while the operation was pending (its `reject` has run). */
  readonly expired: boolean;
}

class Entry implements Deadline {
  expired = false;
  settled = false;
  constructor(
    /** Monotonic ms (performance.now). */
    readonly at: number,
    public reject: ((reason: unknown) => void) | undefined,
    readonly label: string,
  ) {}
}

/** A timer that fires this close to an entry's deadline counts it as due (timers round to whole ms). */
const SLACK_MS = 1;
/** setTimeout's largest delay; a longer wait is served by re-arming. */
const MAX_DELAY_MS = 2 ** 31 - 1;
/** Settled entries at the queue's front are cut off in bulk once this many piled up. */
const COMPACT_AT = 1024;

/**
 * Deadlines of pending operations that all share one timeout, on one timer.
 *
 * A per-operation timer (setTimeout, clearTimeout) costs microseconds on a hot path. Since every entry
 * gets the same timeout, entries are queued in deadline order (FIFO), and one unref'd timer, armed for
 * the oldest entry, serves them all: when it fires it rejects every entry past its deadline and re-arms
 * for the next pending one. Settling only flags an entry; settled entries leave the queue when they
 * reach its front (operations mostly settle in order, so the queue stays about as long as the number
 * in flight). The timer never keeps the process alive on its own.
 */
export class Deadlines {
  readonly #timeoutMs: number;
  readonly #reason: (label: string) => unknown;
  #queue: Entry[] = [];
  #head = 0;
  #timer: NodeJS.Timeout | undefined;

  /** `reason(label)` builds what an expired entry's `reject` receives. */
  constructor(timeoutMs: number, reason: (label: string) => unknown) {
    this.#timeoutMs = timeoutMs;
    this.#reason = reason;
  }

  /** Entries not yet dropped from the queue (settled ones may linger until they reach its front). */
  get size(): number {
    return this.#queue.length - this.#head;
  }

  /** Whether the shared timer is armed. */
  get armed(): boolean {
    return this.#timer !== undefined;
  }

  /** Tracks an operation; unless settled first, `reject(reason(label))` runs once its deadline passes. */
  track(reject: (reason: unknown) => void, label: string): Deadline {
    const entry = new Entry(performance.now() + this.#timeoutMs, reject, label);
    this.#queue.push(entry);
    // With entries queued the timer is armed for a deadline no later than this one.
    if (this.#timer === undefined) this.#arm(this.#timeoutMs);
    return entry;
  }

  /** Marks an operation settled. False when it had expired already: its caller was told it failed. */
  settle(deadline: Deadline): boolean {
    const entry = deadline as Entry;
    if (entry.expired) return false;
    if (entry.settled) return true;
    entry.settled = true;
    entry.reject = undefined;
    if (this.#queue[this.#head] === entry) this.#trim();
    return true;
  }

  #trim(): void {
    const queue = this.#queue;
    let head = this.#head;
    while (head < queue.length && queue[head]!.settled) head++;
    if (head === queue.length) {
      queue.length = 0;
      head = 0;
    } else if (head >= COMPACT_AT && head * 2 >= queue.length) {
      queue.splice(0, head);
      head = 0;
    }
    this.#head = head;
  }

  #arm(delayMs: number): void {
    this.#timer = setTimeout(this.#fire, Math.min(MAX_DELAY_MS, Math.max(1, Math.ceil(delayMs))));
    this.#timer.unref();
  }

  readonly #fire = (): void => {
    this.#timer = undefined;
    const now = performance.now() + SLACK_MS;
    const queue = this.#queue;
    while (this.#head < queue.length) {
      const entry = queue[this.#head]!;
      if (!entry.settled) {
        if (entry.at > now) break;
        entry.expired = true;
        const reject = entry.reject!;
        entry.reject = undefined;
        reject(this.#reason(entry.label));
      }
      this.#head++;
    }
    this.#trim();
    if (this.#head < queue.length) this.#arm(queue[this.#head]!.at - performance.now());
  };
}
