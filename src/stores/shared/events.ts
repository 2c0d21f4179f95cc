import type { StoreEvent, StoreEventListener } from "../../core/store.js";

/**
 * A store's event listeners, with the one delivery policy every store keeps: each listener gets its own
 * copy of the event, and a listener that throws is reported as a process warning (`StowageWarning`,
 * code `STOWAGE_LISTENER_THREW`) while the publisher and the other listeners carry on. It never crashes
 * the process and never breaks the connection that brought the event.
 */
export class EventFanout {
  readonly #listeners = new Set<StoreEventListener>();

  /** How many listeners there are. */
  get size(): number {
    return this.#listeners.size;
  }

  /** Adds a listener; the function returned removes it (safe to call twice). */
  add(listener: StoreEventListener): () => void {
    // A wrapper, so the same function subscribed twice is two subscriptions, as with an EventEmitter.
    const entry: StoreEventListener = (event) => listener(event);
    this.#listeners.add(entry);
    return () => {
      this.#listeners.delete(entry);
    };
  }

  /** Calls every listener with a fresh copy from `copy`; one that throws is reported, not rethrown. */
  deliver(copy: () => StoreEvent): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(copy());
      } catch (error) {
        reportListenerError(error);
      }
    }
  }

  /** Removes every listener. */
  clear(): void {
    this.#listeners.clear();
  }
}

function reportListenerError(error: unknown): void {
  const what = error instanceof Error ? `${error.name}: ${error.message}` : typeof error;
  process.emitWarning(`a store event listener threw: ${what}`, {
    type: "StowageWarning",
    code: "STOWAGE_LISTENER_THREW",
  });
}
