// V8 rehashes a Map in one step when deletions leave it a quarter full; for a Map of a million entries
// that single step blocks for 20-30 ms. Spreading the keys over many small Maps keeps each rehash small,
// so a mass expiry, which deletes in time-bounded batches, never meets one long rehash.
const SHARDS = 64;
const MASK = SHARDS - 1;

function shardOf(key: string): number {
  const n = key.length;
  if (n === 0) return 0;
  // Characters from both ends and the middle, so ids that share a prefix or suffix still spread.
  let h = key.charCodeAt(n - 1);
  h = (h * 31 + key.charCodeAt(n >> 1)) | 0;
  h = (h * 31 + key.charCodeAt(n > 1 ? n - 2 : 0)) | 0;
  h = (h * 31 + key.charCodeAt(0)) | 0;
  return (h ^ (h >>> 7)) & MASK;
}

/** A string-keyed map spread over many Maps so no single rehash is large. */
export class ShardedMap<V> {
  private readonly shards: Map<string, V>[] = Array.from({ length: SHARDS }, () => new Map<string, V>());
  private count = 0;

  /** Number of entries. */
  get size(): number {
    return this.count;
  }

  get(key: string): V | undefined {
    return this.shards[shardOf(key)]!.get(key);
  }

  set(key: string, value: V): void {
    const shard = this.shards[shardOf(key)]!;
    const before = shard.size;
    shard.set(key, value);
    this.count += shard.size - before;
  }

  delete(key: string): boolean {
    const deleted = this.shards[shardOf(key)]!.delete(key);
    if (deleted) this.count--;
    return deleted;
  }

  /** Every value, shard by shard; entries added or removed meanwhile may or may not be visited. */
  *values(): IterableIterator<V> {
    for (const shard of this.shards) yield* shard.values();
  }

  clear(): void {
    for (const shard of this.shards) shard.clear();
    this.count = 0;
  }
}
