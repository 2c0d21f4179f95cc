import type pg from "pg";
import { connectWithin, within } from "./guard.js";

const RETRY_BASE_MS = 50;
const RETRY_MAX_MS = 2_000;

/**
 * Holds one pool client in LISTEN on a channel while active. When the connection drops (server restart,
 * network cut) it reconnects with jittered exponential backoff until it is listening again or stopped.
 * Notifications sent while it is reconnecting are lost: NOTIFY is not durable.
 */
export class PgListener {
  readonly #pool: pg.Pool;
  readonly #channel: string;
  readonly #channelIdent: string;
  readonly #timeoutMs: number;
  readonly #onPayload: (payload: string) => void;
  #client: pg.PoolClient | undefined;
  #starting: Promise<void> | undefined;
  #retry: NodeJS.Timeout | undefined;
  #attempt = 0;
  #active = false;

  constructor(
    pool: pg.Pool,
    channel: string,
    channelIdent: string,
    timeoutMs: number,
    onPayload: (payload: string) => void,
  ) {
    this.#pool = pool;
    this.#channel = channel;
    this.#channelIdent = channelIdent;
    this.#timeoutMs = timeoutMs;
    this.#onPayload = onPayload;
  }

  /** Listens (if not already); resolves once notifications flow, rejects if that fails within the timeout. */
  start(): Promise<void> {
    this.#active = true;
    if (this.#client) return Promise.resolve();
    this.#starting ??= this.#connect().finally(() => {
      this.#starting = undefined;
    });
    return this.#starting;
  }

  /** Stops listening and gives the connection back (closed, so no pooled client keeps a LISTEN). */
  async stop(): Promise<void> {
    this.#active = false;
    clearTimeout(this.#retry);
    this.#retry = undefined;
    await this.#starting?.catch(() => undefined);
    const client = this.#client;
    this.#client = undefined;
    client?.release(true);
  }

  async #connect(): Promise<void> {
    let client: pg.PoolClient;
    try {
      client = await connectWithin(this.#pool, this.#timeoutMs);
    } catch (error) {
      this.#scheduleRetry();
      throw error;
    }
    const lost = (error?: Error): void => {
      if (this.#client !== client) return;
      this.#client = undefined;
      client.off("notification", onNotification);
      client.release(error ?? true);
      this.#scheduleRetry();
    };
    const onNotification = (message: pg.Notification): void => {
      if (message.channel === this.#channel && message.payload !== undefined)
        this.#onPayload(message.payload);
    };
    // Checked-out pool clients have no 'error' listener of their own: without this one a dropped
    // connection would crash the process.
    client.on("error", lost);
    client.on("end", () => lost());
    client.on("notification", onNotification);
    try {
      await within(client.query(`LISTEN ${this.#channelIdent}`), this.#timeoutMs, "listen");
    } catch (error) {
      client.off("notification", onNotification);
      client.release(error instanceof Error ? error : true);
      this.#scheduleRetry();
      throw error;
    }
    if (!this.#active) {
      client.off("notification", onNotification);
      client.release(true);
      return;
    }
    this.#client = client;
    this.#attempt = 0;
  }

  #scheduleRetry(): void {
    if (!this.#active || this.#retry) return;
    const delay = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** this.#attempt) * (0.5 + Math.random());
    this.#attempt++;
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      // A failed attempt schedules the next one itself.
      this.start().catch(() => undefined);
    }, delay);
    this.#retry.unref();
  }
}
