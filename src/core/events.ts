import type { RegenerateReason } from "./session.js";

/** Events a session manager emits, with their payloads. None carries a token or secret. */
export interface SessionEvents {
  /** A new session was written. */
  created: { id: string; userId?: string };
  /** A token loaded its session. */
  loaded: { id: string };
  /** A session got a new id. */
  regenerated: { oldId: string; id: string; reason: RegenerateReason };
  /** A session ended, here or (`remote`) in another process. */
  ended: { id: string; userId?: string; remote?: boolean };
  /** A token named a session that had expired. */
  expired: { id: string };
  /** A token had a valid id but the wrong secret. */
  forged: { id: string };
  /** A versioned write lost a race and is being retried. */
  conflict: { id: string; attempt: number };
  /** A connection session resumed in another process; `connection` is its new holder (see stowage/ws). */
  replaced: { id: string; connection: { id: string; node: string }; remote?: boolean };
  /** A background failure (e.g. the store's event subscription could not be set up). */
  error: Error;
}

type Listener<T> = (payload: T) => void;

/** A small typed emitter; a listener that throws cannot break the emitter or the other listeners. */
export class Emitter<E extends object> {
  // Listeners by event in a plain object of arrays, made on the first `on`: a connection holds one of
  // these per live connection, and a Map of Sets costs several times the memory (bench: RSS per idle
  // connection).
  #listeners: { [K in keyof E]?: Listener<E[K]>[] } | undefined;
  /** Called when a listener is added; subclasses start background work lazily here. */
  protected onListen: ((event: keyof E) => void) | undefined;

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof E>(event: K, listener: Listener<E[K]>): () => void {
    this.#listeners ??= {};
    const all: { [K in keyof E]?: Listener<E[K]>[] } = this.#listeners;
    const list = all[event];
    // A listener added twice is one listener, as it was with a Set. A new array each time: an emit
    // under way keeps iterating the one it started with.
    if (!list?.includes(listener)) all[event] = list ? [...list, listener] : [listener];
    this.onListen?.(event);
    return () => this.off(event, listener);
  }

  /** Removes a listener. */
  off<K extends keyof E>(event: K, listener: Listener<E[K]>): void {
    const all = this.#listeners;
    const list = all?.[event];
    if (!all || !list) return;
    const at = list.indexOf(listener);
    if (at === -1) return;
    const rest = list.filter((_, i) => i !== at);
    if (rest.length > 0) all[event] = rest;
    else delete all[event];
  }

  /** True when the event has a listener; lets a hot path skip building a payload nobody reads. */
  protected listens(event: keyof E): boolean {
    return (this.#listeners?.[event]?.length ?? 0) > 0;
  }

  /** Calls every listener of an event with the payload. */
  protected emit<K extends keyof E>(event: K, payload: E[K]): void {
    const list = this.#listeners?.[event];
    if (!list) {
      if (event === "error") process.emitWarning(payload as Error);
      return;
    }
    for (const listener of list) {
      try {
        listener(payload);
      } catch (error) {
        if (event !== "error")
          this.emit("error" as K, (error instanceof Error ? error : new Error(String(error))) as E[K]);
      }
    }
  }
}
