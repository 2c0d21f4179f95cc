import type { SessionStore } from "../../src/stores/types.js";

/**
 * A real store wrapped so a test can count the calls made to it (a wrapper, not a mock). `peek` is
 * counted as "get": it is get's fast lane on stores that have it, and tests count reads, not lanes.
 */
export function countingStore<S extends SessionStore>(
  store: S,
): { store: S; calls: string[]; reset(): void } {
  const calls: string[] = [];
  const wrapped = new Proxy(store, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver);
      if (typeof value !== "function" || key === "constructor") return value;
      return (...args: unknown[]) => {
        calls.push(key === "peek" ? "get" : String(key));
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { store: wrapped, calls, reset: () => calls.splice(0) };
}
