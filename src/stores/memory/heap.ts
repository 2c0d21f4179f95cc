const MIN_KEYS = 1024;

/** Something an `ExpiryHeap` can hold. */
export interface Expiring {
  /** Position in the heap, -1 when not in one; owned by the heap. */
  heapIndex: number;
}

/**
 * A binary min-heap on expiry that knows where each item sits, so an item can be removed or re-timed in
 * O(log n) without leaving stale entries behind (the heap never holds more than the live items). The
 * expiries sit in a Float64Array beside the items rather than on them: a number field on an object is a
 * 16-byte heap number of its own, 24 bytes per session in all (bench: heap per session).
 */
export class ExpiryHeap<T extends Expiring> {
  private readonly items: T[] = [];
  private keys = new Float64Array(MIN_KEYS);

  /** How many items the heap holds. */
  get size(): number {
    return this.items.length;
  }

  /** The item that expires first, without removing it. */
  peek(): T | undefined {
    return this.items[0];
  }

  /** When the first item expires (ms since the epoch); Infinity when the heap is empty. */
  first(): number {
    return this.items.length > 0 ? this.keys[0]! : Number.POSITIVE_INFINITY;
  }

  /** When an item in this heap expires. */
  expiryOf(item: T): number {
    return this.keys[item.heapIndex]!;
  }

  /** Adds an item (which must not be in a heap yet). */
  push(item: T, expiry: number): void {
    const index = this.items.length;
    if (index === this.keys.length) {
      const grown = new Float64Array(index * 2);
      grown.set(this.keys);
      this.keys = grown;
    }
    this.items.push(item);
    this.up(index, item, expiry);
  }

  /** Removes and returns the item that expires first. */
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

  /** Changes the expiry of an item in this heap and restores heap order. */
  update(item: T, expiry: number): void {
    const index = item.heapIndex;
    if (index < 0 || this.items[index] !== item) return;
    const before = this.keys[index]!;
    if (expiry < before) this.up(index, item, expiry);
    else if (expiry > before) this.down(index, item, expiry);
  }

  /** Drops every item. */
  clear(): void {
    for (const item of this.items) item.heapIndex = -1;
    this.items.length = 0;
    this.keys = new Float64Array(MIN_KEYS);
  }

  private removeAt(index: number): void {
    const items = this.items;
    const removed = items[index]!;
    const lastIndex = items.length - 1;
    const last = items.pop()!;
    removed.heapIndex = -1;
    const expiry = this.keys[lastIndex]!;
    // Shrunk by half when a quarter full, so a mass expiry gives the memory back.
    if (lastIndex < this.keys.length >> 2 && this.keys.length > MIN_KEYS) {
      this.keys = this.keys.slice(0, this.keys.length >> 1);
    }
    if (index === lastIndex) return;
    // The moved item may belong above or below its new place.
    if (index > 0 && this.keys[(index - 1) >> 1]! > expiry) this.up(index, last, expiry);
    else this.down(index, last, expiry);
  }

  /** Places `item` with `expiry` at `start` or above it. */
  private up(start: number, item: T, expiry: number): void {
    const { items, keys } = this;
    let index = start;
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      if (keys[parentIndex]! <= expiry) break;
      const parent = items[parentIndex]!;
      items[index] = parent;
      keys[index] = keys[parentIndex]!;
      parent.heapIndex = index;
      index = parentIndex;
    }
    items[index] = item;
    keys[index] = expiry;
    item.heapIndex = index;
  }

  /** Places `item` with `expiry` at `start` or below it. */
  private down(start: number, item: T, expiry: number): void {
    const { items, keys } = this;
    const length = items.length;
    let index = start;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= length) break;
      const right = left + 1;
      const child = right < length && keys[right]! < keys[left]! ? right : left;
      if (keys[child]! >= expiry) break;
      const smallest = items[child]!;
      items[index] = smallest;
      keys[index] = keys[child]!;
      smallest.heapIndex = index;
      index = child;
    }
    items[index] = item;
    keys[index] = expiry;
    item.heapIndex = index;
  }
}
