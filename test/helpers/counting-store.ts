import type { SessionStore } from "../../src/core/store.js";

/**
 * A real store wrapped so a test can count the calls made to it (a wrapper, not a mock). The fast lanes
 * count as the call they stand for (`peek` and `peekNow` as "get", `commitNow` as "commit", `touchNow` as
 * "touch", `insertEncoded` as "insert"): tests count what reaches the store, not which lane it took.
 */
const LANES: Record<string, string> = {
  peek: "get",
  peekNow: "get",
  commitNow: "commit",
  touchNow: "touch",
  insertEncoded: "insert",
};

export function countingStore<S extends SessionStore>(
  store: S,
): { store: S; calls: string[]; reset(): void } {
  const calls: string[] = [];
  const wrapped = new Proxy(store, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver);
      if (typeof value !== "function" || key === "constructor") return value;
      return (...args: unknown[]) => {
        calls.push(LANES[String(key)] ?? String(key));
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { store: wrapped, calls, reset: () => calls.splice(0) };
}
