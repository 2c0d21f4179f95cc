import { isReplacedError, isStowageError, StowageError } from "../core/errors.js";
import { Emitter } from "../core/events.js";
import { serializeJson, textBytes } from "../core/json.js";
import type { Attributes, ConnectionRef, JsonValue, SessionRecord } from "../core/record.js";
import type { Session } from "../core/session.js";
import { state } from "../core/session-state.js";
import type { Json } from "../protocol/frames.js";
import { CLOSE_CODES, type CloseReason } from "../protocol/reasons.js";

/** The two ends of a transport a connection writes to (see `Transport` in server.ts). */
export interface ConnectionTransport {
  /** Writes one frame's text to the client. */
  write(text: string): void;
  /** Ends the transport with a reason (the client reads the close code). */
  end(reason: CloseReason): void;
}

/** What a connection needs from its server. */
export interface ConnectionHost<A extends object> {
  readonly maxMessageBytes: number;
  append(id: string, texts: string[]): Promise<number>;
  read(id: string, after: number): Promise<{ seq: number; data: string }[]>;
  trim(id: string, through: number): Promise<void>;
  commit(session: Session<A>): Promise<unknown>;
  /** The live session of a connection session's record, held by `generation`. */
  sessionOf(record: SessionRecord, generation: number): Session<A>;
  /** Moves a connection session's idle expiry (its resume window) on, without a Session. */
  touch(id: string, idleExpiresAt: number): Promise<void>;
  /** The resume window, in ms. */
  readonly resumeWindowMs: number;
  closed(connection: Connection<A>, reason: CloseReason): void;
}

/** Events of one connection. */
export interface ConnectionEvents {
  /** A client message, in order, once. */
  message: Json;
  /** The connection is over: `lost` (the network), or a reason the server gave. */
  close: { reason: CloseReason };
  /** A background failure (a store outage while trimming the outbox, say). */
  error: Error;
}

interface Pending {
  text: string;
  resolve: (seq: number) => void;
  reject: (error: unknown) => void;
}

// Trimming the outbox costs a store call: acks are gathered until this many messages or this long.
const TRIM_EVERY = 64;
const TRIM_AFTER_MS = 250;

/**
 * One live connection of a connection session. Messages both ways carry sequence numbers: what the
 * server sends goes to the session's outbox in the store first (so a resume on any process replays it),
 * what the client sends is handed to `message` listeners once its number is stored, so a message is
 * never handled twice even when the client resumes elsewhere and sends it again.
 */
export class Connection<A extends object = Attributes> extends Emitter<ConnectionEvents> {
  /** The connection session's id: the same across every resume. */
  readonly id: string;
  /** The record the connection was opened with, until `session` is first needed. */
  #record: SessionRecord | undefined;
  #session: Session<A> | undefined;
  /** True when this connection resumed an earlier one. */
  readonly resumed: boolean;
  /** Messages the replay bounds dropped before this client could have them, on a resume; undefined when none. */
  readonly gap: { after: number; through: number } | undefined;
  readonly #transport: ConnectionTransport;
  readonly #host: ConnectionHost<A>;
  #ref: ConnectionRef;
  #closed: CloseReason | undefined;
  /** Server messages written to this client, and acknowledged by it. */
  #delivered: number;
  #acked: number;
  #trimmed: number;
  #trimTimer: NodeJS.Timeout | undefined;
  /** Sends of this turn, appended together; and the append in flight. */
  #outgoing: Pending[] = [];
  #appending = false;
  #pumping: Promise<void> | undefined;
  #pumpAgain = false;
  /** Client messages taken in (numbered up to `#accepted`), stored as processed up to `#ref.received`. */
  #incoming: { s: number; d: Json }[] = [];
  #accepted: number;
  #storing = false;

  /** @internal Made by the connection server. */
  constructor(
    transport: ConnectionTransport,
    host: ConnectionHost<A>,
    record: SessionRecord,
    ref: ConnectionRef,
    init: { resumed: boolean; delivered: number; gap?: { after: number; through: number } },
  ) {
    super();
    this.#transport = transport;
    this.#host = host;
    this.id = record.id;
    this.#record = record;
    this.resumed = init.resumed;
    this.gap = init.gap;
    this.#ref = ref;
    this.#delivered = init.delivered;
    this.#acked = init.delivered;
    this.#trimmed = init.delivered;
    this.#accepted = ref.received;
  }

  /**
   * The connection session (attributes, user, level); its changes are committed after each batch of
   * client messages and at heartbeats. Made on first use: an idle connection holds only its record.
   */
  get session(): Session<A> {
    if (this.#session === undefined) {
      this.#session = this.#host.sessionOf(this.#record!, this.#ref.generation);
      this.#record = undefined;
    }
    return this.#session;
  }

  /** The user the connection session belongs to, if any. */
  get userId(): string | undefined {
    return this.#session ? this.#session.userId : this.#record!.userId;
  }

  /**
   * @internal The heartbeat: closes the connection once its session's absolute lifetime is over, and
   * keeps its resume window moving while it is open (a commit of the session, or a plain touch).
   */
  heartbeat(now: number): void {
    if (this.#closed !== undefined) return;
    const session = this.#session;
    if ((session ? session.expiresAt : this.#record!.expiresAt) <= now) {
      this.terminate("expired");
      return;
    }
    // Only an ended session closes it here; a store outage at a heartbeat is tried again at the next.
    const failed = (error: unknown) => this.#ended(error);
    if (session) {
      this.#host.commit(session).catch(failed);
      return;
    }
    const record = this.#record!;
    const window = this.#host.resumeWindowMs;
    if (now - (record.idleExpiresAt - window) < window / 4) return;
    record.idleExpiresAt = now + window;
    this.#host.touch(this.id, record.idleExpiresAt).catch(failed);
  }

  /** Why the connection closed, or undefined while it is open. */
  get closeReason(): CloseReason | undefined {
    return this.#closed;
  }

  /** @internal Who holds the session now (this connection, until replaced). */
  get ref(): ConnectionRef {
    return this.#ref;
  }

  /**
   * Sends a JSON value to the client: kept in the session's outbox until the client acknowledges it, so
   * it arrives once and in order even across a dropped network and a resume on another process. Resolves
   * its sequence number once the store has it; rejects with STORE_UNAVAILABLE, or SESSION_ENDED when the
   * session is gone. A value that is not JSON, or larger than the replay bound, throws INVALID_VALUE.
   */
  send(value: JsonValue): Promise<number> {
    const text = messageText(value, this.#host.maxMessageBytes);
    return new Promise((resolve, reject) => {
      this.#outgoing.push({ text, resolve, reject });
      // Every send of one turn goes to the store in one append.
      if (this.#outgoing.length === 1 && !this.#appending) queueMicrotask(() => this.#flush());
    });
  }

  /** Closes the connection with `closed` (the client will try to resume) or another reason. */
  close(reason: CloseReason = "closed"): void {
    this.terminate(reason);
  }

  /** @internal Ends the connection: tells the client why, unless the network is already gone. */
  terminate(reason: CloseReason): void {
    if (this.#closed !== undefined) return;
    this.#closed = reason;
    clearTimeout(this.#trimTimer);
    if (reason !== "lost") {
      this.#transport.write(`{"t":"close","reason":"${reason}"}`);
      this.#transport.end(reason);
    }
    // Acks gathered so far are worth a trim; a failure here only leaves messages a resume skips anyway.
    if (this.#acked > this.#trimmed) this.#host.trim(this.id, this.#acked).catch(() => undefined);
    this.#host.closed(this, reason);
    this.emit("close", { reason });
  }

  /** @internal A frame from the client, already parsed. */
  receive(frame: { t: "m"; s: number; d: Json } | { t: "ack"; s: number } | { t: "ping" }): void {
    if (this.#closed !== undefined) return;
    if (frame.t === "ping") {
      this.#transport.write('{"t":"pong"}');
    } else if (frame.t === "ack") {
      if (frame.s > this.#delivered) this.terminate("malformed");
      else if (frame.s > this.#acked) this.#ackedThrough(frame.s);
    } else if (frame.s <= this.#accepted) {
      // Sent again after a resume: handled already (or about to be). The ack tells the client so.
      if (!this.#storing && this.#incoming.length === 0)
        this.#transport.write(`{"t":"ack","s":${this.#ref.received}}`);
    } else if (frame.s !== this.#accepted + 1) {
      this.terminate("malformed");
    } else {
      this.#accepted = frame.s;
      this.#incoming.push(frame);
      if (!this.#storing) queueMicrotask(() => this.#store());
    }
  }

  /** @internal The session's outbox grew elsewhere (`live.send` on another process): deliver what is new. */
  pump(): Promise<void> {
    if (this.#pumping) {
      this.#pumpAgain = true;
      return this.#pumping;
    }
    const run = async () => {
      try {
        do {
          this.#pumpAgain = false;
          for (;;) {
            const messages = await this.#host.read(this.id, this.#delivered);
            if (this.#closed !== undefined || messages.length === 0) break;
            this.#deliver(messages);
          }
        } while (this.#pumpAgain && this.#closed === undefined);
      } catch (error) {
        this.#failed(error);
      } finally {
        this.#pumping = undefined;
      }
    };
    this.#pumping = run();
    return this.#pumping;
  }

  /** Writes messages the client has not had, skipping any a parallel path wrote already. */
  #deliver(messages: readonly { seq: number; data: string }[]): void {
    for (const { seq, data } of messages) {
      if (seq <= this.#delivered) continue;
      this.#transport.write(`{"t":"m","s":${seq},"d":${data}}`);
      this.#delivered = seq;
    }
  }

  async #flush(): Promise<void> {
    const batch = this.#outgoing;
    if (batch.length === 0) return;
    this.#outgoing = [];
    this.#appending = true;
    try {
      const last = await this.#host.append(
        this.id,
        batch.map((p) => p.text),
      );
      const first = last - batch.length + 1;
      if (this.#closed === undefined) {
        // The usual case: nothing came in between, so the batch goes out as it is.
        if (first === this.#delivered + 1 && !this.#pumping) {
          this.#deliver(batch.map((p, i) => ({ seq: first + i, data: p.text })));
        } else {
          void this.pump();
        }
      }
      for (let i = 0; i < batch.length; i++) batch[i]!.resolve(first + i);
    } catch (error) {
      for (const p of batch) p.reject(error);
    } finally {
      this.#appending = false;
      if (this.#outgoing.length > 0) void this.#flush();
    }
  }

  #ackedThrough(seq: number): void {
    this.#acked = seq;
    if (this.#acked - this.#trimmed >= TRIM_EVERY) this.#trim();
    else this.#trimTimer ??= setTimeout(() => this.#trim(), TRIM_AFTER_MS).unref();
  }

  #trim(): void {
    clearTimeout(this.#trimTimer);
    this.#trimTimer = undefined;
    const through = this.#acked;
    this.#trimmed = through;
    // A failed trim loses nothing: the messages stay until a later trim, and a resume skips them.
    this.#host.trim(this.id, through).catch((error: unknown) => this.emit("error", asError(error)));
  }

  /**
   * Stores how far the client's messages are processed, then hands them to the listeners and
   * acknowledges them. The write is fenced by this connection's generation: once a resume elsewhere has
   * taken the session, it fails, and the messages are left to the new holder (the client sends them
   * again there), so none is handled twice.
   */
  async #store(): Promise<void> {
    if (this.#storing || this.#incoming.length === 0 || this.#closed !== undefined) return;
    this.#storing = true;
    const batch = this.#incoming;
    this.#incoming = [];
    const through = batch[batch.length - 1]!.s;
    try {
      const s = this.session[state];
      const ref: ConnectionRef = { ...this.#ref, received: through };
      s.meta.connection = ref;
      s.dirty = true;
      await this.#host.commit(this.session);
      this.#ref = ref;
      // Stored as processed here, so handled here, even if the network dropped meanwhile: a resume will
      // not bring these again.
      for (const frame of batch) this.emit("message", frame.d);
      if (this.#closed === undefined) this.#transport.write(`{"t":"ack","s":${through}}`);
      if (this.session[state].dirty) await this.#host.commit(this.session);
    } catch (error) {
      this.#failed(error);
    } finally {
      this.#storing = false;
      if (this.#incoming.length > 0) void this.#store();
    }
  }

  /** A store call failed: the connection closes with the reason the client should act on. */
  #failed(error: unknown): void {
    if (this.#closed !== undefined || this.#ended(error)) return;
    this.emit("error", asError(error));
    this.terminate("unavailable");
  }

  /** Closes with `replaced` or `revoked` when a store call says the session is no longer this one's. */
  #ended(error: unknown): boolean {
    if (!isStowageError(error, "SESSION_ENDED")) return false;
    this.terminate(isReplacedError(error) ? "replaced" : "revoked");
    return true;
  }
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** A message's JSON text, or INVALID_VALUE when it is not JSON or larger than `maxBytes`. */
export function messageText(value: JsonValue, maxBytes: number): string {
  const text = serializeJson(value, "message");
  if (textBytes(text) > maxBytes) {
    throw new StowageError(
      "INVALID_VALUE",
      `the message takes more than ${maxBytes} bytes (the replay and frame bounds)`,
    );
  }
  return text;
}

/** The WebSocket close code of a reason. */
export function closeCode(reason: CloseReason): number {
  return reason === "lost" ? 1006 : CLOSE_CODES[reason];
}
