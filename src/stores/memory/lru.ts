/** Something an `LruList` can hold: the list owns these two links. */
export interface LruNode {
  /** The next more recently used node. */
  newer: LruNode | undefined;
  /** The next less recently used node. */
  older: LruNode | undefined;
}

/**
 * An intrusive doubly linked list in order of use: O(1) to mark a node used, to remove one, and to find
 * the least recently used. It lets the store's records live in sharded Maps whose order means nothing.
 */
export class LruList<T extends LruNode> {
  private newest: T | undefined;
  private oldest: T | undefined;

  /** The least recently used node. */
  get leastRecent(): T | undefined {
    return this.oldest;
  }

  /** Adds a node (not in the list yet) as the most recently used. */
  add(node: T): void {
    node.older = this.newest;
    node.newer = undefined;
    if (this.newest) this.newest.newer = node;
    else this.oldest = node;
    this.newest = node;
  }

  /** Makes a listed node the most recently used. */
  touch(node: T): void {
    if (node === this.newest) return;
    this.remove(node);
    this.add(node);
  }

  /** Removes a listed node. */
  remove(node: T): void {
    if (node.newer) node.newer.older = node.older;
    else if (this.newest === node) this.newest = node.older as T | undefined;
    if (node.older) node.older.newer = node.newer;
    else if (this.oldest === node) this.oldest = node.newer as T | undefined;
    node.newer = undefined;
    node.older = undefined;
  }

  /** Forgets every node. */
  clear(): void {
    this.newest = undefined;
    this.oldest = undefined;
  }
}
