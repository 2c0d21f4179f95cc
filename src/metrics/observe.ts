import { isStowageError } from "../core/errors.js";
import type { SessionStore } from "../core/store.js";

/** One finished store call, as an observer hears it. */
export interface StoreCall {
  /** The contract method (`get`, `commit`, `peekNow`, …). */
  operation: string;
  /** The store's name (`memory`, `sqlite`, `redis`, `postgres`, or a third party's). */
  store: string;
  /** How long it took, in seconds. */
  seconds: number;
  /** The StowageError code it failed with, or `"ERROR"` for anything else; undefined on success. */
  error: string | undefined;
}

/** Told about store calls; `start` (optional) runs as one begins and may return a function run as it ends. */
export interface StoreObserver {
  /** A call has finished. */
  done(call: StoreCall): void;
  /** A call begins; what it returns (if a function) is called with the outcome when it ends. */
  start?(operation: string, store: string): ((call: StoreCall) => void) | undefined;
}

const OPERATIONS = [
  "insert",
  "insertEncoded",
  "get",
  "peek",
  "commit",
  "rename",
  "consume",
  "delete",
  "touch",
  "listByUser",
  "deleteByUser",
  "sweep",
  "lock",
  "outboxAppend",
  "outboxRead",
  "outboxTrim",
  "publish",
  "subscribe",
] as const;
const SYNC_OPERATIONS = ["peekNow", "commitNow", "touchNow"] as const;
/** Lanes reported as the operation they stand for: a new session's insert is an insert, however it goes. */
const REPORTED_AS: Record<string, string> = { insertEncoded: "insert" };

const observed = new WeakMap<SessionStore, Set<StoreObserver>>();

/**
 * Wraps the store's methods in place, once per store, so that every call — the manager's, the
 * adapters', the application's own — reaches the observers. The store object stays the same, so the
 * manager that already holds it is observed too. Returns a function that removes this observer.
 */
export function observeStore(store: SessionStore, observer: StoreObserver): () => void {
  let observers = observed.get(store);
  if (!observers) {
    const set = new Set<StoreObserver>();
    observers = set;
    observed.set(store, set);
    const target = store as unknown as Record<string, unknown>;
    for (const operation of OPERATIONS) {
      const original = target[operation];
      if (typeof original !== "function") continue;
      const reported = REPORTED_AS[operation] ?? operation;
      target[operation] = function (this: unknown, ...args: unknown[]) {
        if (set.size === 0) return original.apply(store, args);
        const call = begin(set, reported, store.name);
        let result: unknown;
        try {
          result = original.apply(store, args);
        } catch (error) {
          call(error);
          throw error;
        }
        return Promise.resolve(result).then(
          (value) => {
            call(undefined);
            return value;
          },
          (error: unknown) => {
            call(error);
            throw error;
          },
        );
      };
    }
    for (const operation of SYNC_OPERATIONS) {
      const original = target[operation];
      if (typeof original !== "function") continue;
      target[operation] = function (this: unknown, ...args: unknown[]) {
        if (set.size === 0) return original.apply(store, args);
        const call = begin(set, operation, store.name);
        try {
          const value = original.apply(store, args);
          call(undefined);
          return value;
        } catch (error) {
          call(error);
          throw error;
        }
      };
    }
  }
  const set = observers;
  set.add(observer);
  return () => {
    set.delete(observer);
  };
}

/** Starts one call's observation; the function returned ends it with the call's error, if any. */
function begin(observers: Set<StoreObserver>, operation: string, store: string): (error: unknown) => void {
  const started = performance.now();
  const ends: ((call: StoreCall) => void)[] = [];
  for (const observer of observers) {
    const end = observer.start?.(operation, store);
    if (end) ends.push(end);
  }
  return (error) => {
    const call: StoreCall = {
      operation,
      store,
      seconds: (performance.now() - started) / 1000,
      error: error === undefined ? undefined : isStowageError(error) ? error.code : "ERROR",
    };
    for (const end of ends) end(call);
    for (const observer of observers) observer.done(call);
  };
}
