/** Something with a deadline that an `ExpiryHeap` can hold. */
export interface Expiring {
  /** When it expires (ms since the epoch). */
  expiry: number;
  /** Position in the heap, -1 when not in one; owned by the heap. */
  heapIndex: number;
}

/**
 * A binary min-heap on `expiry` that knows where each item sits, so an item can be removed or re-timed
 * in O(log n) without leaving stale entries behind (the heap never holds more than the live items).
 */
export class ExpiryHeap<T extends Expiring> {
  private readonly items: T[] = [];

  /** How many items the heap holds. */
  get size(): number {
    return this.items.length;
  }

  /** The item that expires first, without removing it. */
  peek(): T | undefined {
    return this.items[0];
  }

  /** Adds an item (which must not be in a heap yet). */
  push(item: T): void {
    item.heapIndex = this.items.length;
    this.items.push(item);
    this.up(item.heapIndex);
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

  /** Changes an item's expiry and restores heap order. */
  update(item: T, expiry: number): void {
    const before = item.expiry;
    item.expiry = expiry;
    if (item.heapIndex < 0 || this.items[item.heapIndex] !== item) return;
    if (expiry < before) this.up(item.heapIndex);
    else if (expiry > before) this.down(item.heapIndex);
  }

  /** Drops every item. */
  clear(): void {
    for (const item of this.items) item.heapIndex = -1;
    this.items.length = 0;
  }

  private removeAt(index: number): void {
    const items = this.items;
    const removed = items[index]!;
    const last = items.pop()!;
    removed.heapIndex = -1;
    if (index === items.length) return;
    items[index] = last;
    last.heapIndex = index;
    // The moved item may belong above or below its new place.
    if (index > 0 && items[(index - 1) >> 1]!.expiry > last.expiry) this.up(index);
    else this.down(index);
  }

  private up(start: number): void {
    const items = this.items;
    const item = items[start]!;
    let index = start;
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      const parent = items[parentIndex]!;
      if (parent.expiry <= item.expiry) break;
      items[index] = parent;
      parent.heapIndex = index;
      index = parentIndex;
    }
    items[index] = item;
    item.heapIndex = index;
  }

  private down(start: number): void {
    const items = this.items;
    const length = items.length;
    const item = items[start]!;
    let index = start;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= length) break;
      const right = left + 1;
      let child = left;
      if (right < length && items[right]!.expiry < items[left]!.expiry) child = right;
      const smallest = items[child]!;
      if (smallest.expiry >= item.expiry) break;
      items[index] = smallest;
      smallest.heapIndex = index;
      index = child;
    }
    items[index] = item;
    item.heapIndex = index;
  }
}
