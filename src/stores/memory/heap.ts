const MIN_KEYS = 1024;

/** Something an `ExpiryHeap` can hold. */
export interface Expiring {
  /** Position in the heap, -1 when not in one; owned by the heap. */
  heapIndex: number;
}

/**
 * A binary min-heap on expiry that knows where each item sits, so an item can be removed or re-timed
 * without leaving stale entries behind (the heap never holds more than the live items). The expiries sit
 * in Float64Arrays beside the items rather than on them: a number field on an object is a 16-byte heap
 * number of its own, 24 bytes per session in all (bench: heap per session).
 *
 * Fast path (docs/internals.md, bench row "node:http + stowage (MemoryStore, 1 KB) vs the bare Map
 * handler: instructions per request"): an item re-timed later, as a session's idle expiry is on nearly
 * every request, keeps its place and only records its new expiry. Its place is ordered by the expiry it
 * had when placed (`keys`, never later than its expiry now, in `expiries`), and it is moved to its new
 * place once that old expiry comes round (`settleFirst`): one move per idle timeout instead of one per
 * request, each O(log n).
 */
export class ExpiryHeap<T extends Expiring> {
  private readonly items: T[] = [];
  /** What heap order goes by: each item's expiry when it was placed. */
  private keys = new Float64Array(MIN_KEYS);
  /** Each item's expiry now: never earlier than its key. */
  private expiries = new Float64Array(MIN_KEYS);

  /** How many items the heap holds. */
  get size(): number {
    return this.items.length;
  }

  /**
   * No item expires before this (ms since the epoch; Infinity when the heap is empty). The first item
   * may have been re-timed later since: `settleFirst` tells.
   */
  first(): number {
    return this.items.length > 0 ? this.keys[0]! : Number.POSITIVE_INFINITY;
  }

  /** If the first item was re-timed later since it was placed, moves it to its place and returns true. */
  settleFirst(): boolean {
    if (this.items.length === 0) return false;
    const expiry = this.expiries[0]!;
    if (expiry === this.keys[0]) return false;
    this.down(0, this.items[0]!, expiry, expiry);
    return true;
  }

  /** When an item in this heap expires. */
  expiryOf(item: T): number {
    return this.expiries[item.heapIndex]!;
  }

  /** Adds an item (which must not be in a heap yet). */
  push(item: T, expiry: number): void {
    const index = this.items.length;
    if (index === this.keys.length) this.resize(index * 2);
    this.items.push(item);
    this.up(index, item, expiry, expiry);
  }

  /** Removes and returns the first item: settled, it expires first. */
  pop(): T | undefined {
    const top = this.items[0];
    if (top !== undefined) this.removeAt(0);
    return top;
  }

  /** Removes an item if it is in this heap. */
  remove(item: T): void {
    const index = item.heapIndex;
    if (index >= 0 && this.items[index] === item) this.removeAt(index);
  }

  /** Changes the expiry of an item in this heap: moved up at once if earlier than its place, else recorded (see the class). */
  update(item: T, expiry: number): void {
    const index = item.heapIndex;
    if (index < 0 || this.items[index] !== item) return;
    if (expiry >= this.keys[index]!) this.expiries[index] = expiry;
    else this.up(index, item, expiry, expiry);
  }

  /** Drops every item. */
  clear(): void {
    for (const item of this.items) item.heapIndex = -1;
    this.items.length = 0;
    this.keys = new Float64Array(MIN_KEYS);
    this.expiries = new Float64Array(MIN_KEYS);
  }

  /**
   * Gives back the memory of a mass removal: arrays a quarter full or less shrink to twice what the heap
   * holds. Called once the removals are over rather than as they go: a new array of a million slots can
   * set off a full garbage collection, which must not land inside an expiry batch (bench: longest
   * event-loop stall during expiry).
   */
  compact(): void {
    const size = this.items.length;
    if (size > this.keys.length >> 2 || this.keys.length === MIN_KEYS) return;
    let length = MIN_KEYS;
    while (length < size * 2) length *= 2;
    this.resize(length);
  }

  private resize(length: number): void {
    const keys = new Float64Array(length);
    const expiries = new Float64Array(length);
    const n = Math.min(length, this.items.length);
    keys.set(this.keys.subarray(0, n));
    expiries.set(this.expiries.subarray(0, n));
    this.keys = keys;
    this.expiries = expiries;
  }

  private removeAt(index: number): void {
    const items = this.items;
    const removed = items[index]!;
    const lastIndex = items.length - 1;
    const last = items.pop()!;
    removed.heapIndex = -1;
    if (index === lastIndex) return;
    const key = this.keys[lastIndex]!;
    const expiry = this.expiries[lastIndex]!;
    // The moved item may belong above or below its new place.
    if (index > 0 && this.keys[(index - 1) >> 1]! > key) this.up(index, last, key, expiry);
    else this.down(index, last, key, expiry);
  }

  /** Places `item` with `key` and `expiry` at `start` or above it. */
  private up(start: number, item: T, key: number, expiry: number): void {
    const { items, keys, expiries } = this;
    let index = start;
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      if (keys[parentIndex]! <= key) break;
      const parent = items[parentIndex]!;
      items[index] = parent;
      keys[index] = keys[parentIndex]!;
      expiries[index] = expiries[parentIndex]!;
      parent.heapIndex = index;
      index = parentIndex;
    }
    items[index] = item;
    keys[index] = key;
    expiries[index] = expiry;
    item.heapIndex = index;
  }

  /** Places `item` with `key` and `expiry` at `start` or below it. */
  private down(start: number, item: T, key: number, expiry: number): void {
    const { items, keys, expiries } = this;
    const length = items.length;
    let index = start;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= length) break;
      const right = left + 1;
      const child = right < length && keys[right]! < keys[left]! ? right : left;
      if (keys[child]! >= key) break;
      const smallest = items[child]!;
      items[index] = smallest;
      keys[index] = keys[child]!;
      expiries[index] = expiries[child]!;
      smallest.heapIndex = index;
      index = child;
    }
    items[index] = item;
    keys[index] = key;
    expiries[index] = expiry;
    item.heapIndex = index;
  }
}
