/** Options for `Session.acquire`. */
export interface AcquireOptions {
  /** How long the lease lasts unless released. @default 10000 */
  leaseMs?: number;
  /** How long to wait for a busy lease before LOCK_TIMEOUT. @default 5000 */
  waitMs?: number;
}

/** A held lease on a session: release it, or let `await using` do it. */
export interface SessionLease extends AsyncDisposable {
  /** Strictly increasing per session; pass it along to fence writes elsewhere. */
  readonly fence: number;
  /** Frees the lease; safe to call twice. */
  release(): Promise<void>;
}
