// The client of stowage's resumable connections, for browsers and Node alike: it imports only the
// protocol module (no Node built-in), uses WebCrypto for its key pairs, and takes the WebSocket class as
// an option where there is no global one (Node 20: the ws package's).
import { type Gap, type Json, MAX_PROOFS, parseServerFrame, proofText } from "../protocol/frames.js";
import { type CloseReason, isRetryable, reasonOfCode } from "../protocol/reasons.js";

export type { Gap, Json } from "../protocol/frames.js";
export type { CloseReason } from "../protocol/reasons.js";
export { isRetryable } from "../protocol/reasons.js";

/** The WebSocket API the client needs (the browser's, or the ws package's). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

/** A WebSocket constructor. */
export type WebSocketClass = new (url: string) => WebSocketLike;

/** Options of `connect`. */
export interface ConnectOptions {
  /** The WebSocket class. @default globalThis.WebSocket */
  WebSocket?: WebSocketClass;
  /** A frame from the server is expected at least this often (the client pings); silence twice as long counts as a lost network. @default 25000 */
  heartbeatMs?: number;
  /** First reconnect delay ceiling, in ms; each attempt doubles it (full jitter). @default 250 */
  minDelayMs?: number;
  /** Largest reconnect delay ceiling, in ms. @default 30000 */
  maxDelayMs?: number;
  /** Most of its own messages the client keeps until the server acknowledges them; `send` past it throws. @default 1000 */
  maxBuffered?: number;
  /** Sent with a new connection's first frame, for the server's `authenticate` (a token, say); never with a resume. */
  auth?: Json;
}

/** Events of a client connection. */
export interface ClientEvents {
  /** Connected: a new session, or (`resumed`) the same one again, with any `gap` the bounds caused. */
  open: { id: string; resumed: boolean; gap?: Gap };
  /** A server message, once and in order. */
  message: Json;
  /** The connection dropped and a new attempt is scheduled. */
  reconnecting: { attempt: number; delayMs: number; reason: CloseReason };
  /** Terminal: the client stopped and will not reconnect. */
  closed: { reason: CloseReason };
}

/** Where the client is. */
export type ClientState = "connecting" | "open" | "reconnecting" | "closed";

type Listener<T> = (payload: T) => void;

interface KeyPair {
  publicKey: string;
  privateKey: CryptoKey;
}

const ED25519 = { name: "Ed25519" } as const;

async function newKeyPair(): Promise<KeyPair> {
  // Not extractable: script on the page can sign with it, but nothing can read the private key out.
  const pair = (await crypto.subtle.generateKey(ED25519, false, ["sign", "verify"])) as CryptoKeyPair;
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  return { publicKey: toBase64url(raw), privateKey: pair.privateKey };
}

async function sign(key: CryptoKey, text: string): Promise<string> {
  const signature = await crypto.subtle.sign(ED25519, key, new TextEncoder().encode(text));
  return toBase64url(new Uint8Array(signature));
}

function toBase64url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * A connection that resumes on its own: after a drop it reconnects with full-jitter exponential backoff,
 * proves possession of its session with a signature over the server's fresh nonce, gets what it missed,
 * and sends again what the server had not acknowledged. It stops on a terminal reason and says why.
 */
export class ClientConnection {
  readonly #url: string;
  readonly #WebSocket: WebSocketClass;
  readonly #heartbeatMs: number;
  readonly #minDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #maxBuffered: number;
  readonly #auth: Json | undefined;
  readonly #listeners = new Map<keyof ClientEvents, Set<Listener<never>>>();
  #state: ClientState = "connecting";
  #socket: WebSocketLike | undefined;
  #id: string | undefined;
  #key: KeyPair | undefined;
  /** The next resume's key pair, made while the connection is idle so a resume need only sign. */
  #spare: Promise<KeyPair> | undefined;
  /** The key offered in the resume awaiting its answer. */
  #nextKey: KeyPair | undefined;
  /** Keys offered in resumes whose answer never came: the server may hold any of them. */
  #unconfirmed: KeyPair[] = [];
  #received = 0;
  #ackedSent = 0;
  #ackTimer: ReturnType<typeof setTimeout> | undefined;
  #sent = 0;
  #unacked: { s: number; text: string }[] = [];
  #attempt = 0;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  #lastHeard = 0;
  #ready = false;

  constructor(url: string, options: ConnectOptions = {}) {
    this.#url = url;
    const WebSocketCtor = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketClass }).WebSocket;
    if (typeof WebSocketCtor !== "function") {
      throw new TypeError(
        "connect needs a WebSocket class: pass { WebSocket } from the ws package on Node 20",
      );
    }
    this.#WebSocket = WebSocketCtor;
    this.#heartbeatMs = options.heartbeatMs ?? 25_000;
    this.#minDelayMs = options.minDelayMs ?? 250;
    this.#maxDelayMs = options.maxDelayMs ?? 30_000;
    this.#maxBuffered = options.maxBuffered ?? 1000;
    this.#auth = options.auth;
    this.#dial();
  }

  /** The connection session's id, once the server has given one. */
  get id(): string | undefined {
    return this.#id;
  }

  /** Where the client is now. */
  get state(): ClientState {
    return this.#state;
  }

  /** Own messages sent and not yet acknowledged by the server. */
  get buffered(): number {
    return this.#unacked.length;
  }

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof ClientEvents>(event: K, listener: Listener<ClientEvents[K]>): () => void {
    let set = this.#listeners.get(event);
    if (!set) {
      set = new Set();
      this.#listeners.set(event, set);
    }
    set.add(listener as Listener<never>);
    return () => set.delete(listener as Listener<never>);
  }

  /**
   * Sends a JSON value: numbered, kept until the server acknowledges it, and sent again after a resume
   * if need be, so the server handles it once. Throws when the buffer is full or the client is closed.
   */
  send(value: Json): void {
    if (this.#state === "closed") throw new Error("the connection is closed");
    if (this.#unacked.length >= this.#maxBuffered) {
      throw new Error(`the send buffer is full (${this.#maxBuffered} messages await the server's ack)`);
    }
    const s = ++this.#sent;
    // One stringify of the whole frame gives a flat string; a template around JSON.stringify(value)
    // gives a rope that costs more to encode than the stringify itself for large values (bench: tcp bulk).
    const text = JSON.stringify({ t: "m", s, d: value });
    this.#unacked.push({ s, text });
    if (this.#ready) this.#socket?.send(text);
  }

  /** Closes for good: no reconnect. The server keeps the session until its resume window ends. */
  close(): void {
    this.#stop("closed", true);
  }

  #emit<K extends keyof ClientEvents>(event: K, payload: ClientEvents[K]): void {
    for (const listener of this.#listeners.get(event) ?? []) {
      try {
        (listener as Listener<ClientEvents[K]>)(payload);
      } catch (error) {
        // A listener's bug must not stop the connection; report it where the platform reports errors.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }

  #dial(): void {
    this.#ready = false;
    let socket: WebSocketLike;
    try {
      socket = new this.#WebSocket(this.#url);
    } catch {
      this.#retry("lost");
      return;
    }
    this.#socket = socket;
    this.#lastHeard = Date.now();
    socket.onmessage = (event) => {
      if (socket !== this.#socket) return;
      this.#lastHeard = Date.now();
      this.#frame(socket, typeof event.data === "string" ? event.data : "");
    };
    socket.onclose = (event) => {
      if (socket !== this.#socket) return;
      this.#dropped(reasonOfCode(event.code));
    };
    socket.onerror = () => undefined;
    clearInterval(this.#pingTimer);
    this.#pingTimer = setInterval(() => this.#heartbeat(socket), Math.max(50, this.#heartbeatMs / 2));
  }

  #heartbeat(socket: WebSocketLike): void {
    if (socket !== this.#socket) return;
    if (Date.now() - this.#lastHeard > this.#heartbeatMs * 2) {
      // Half-open: nothing from the server for two heartbeats. Drop it and resume on a new socket.
      this.#socket = undefined;
      socket.close();
      this.#dropped("lost");
      return;
    }
    if (this.#ready && socket.readyState === 1) socket.send('{"t":"ping"}');
  }

  // Synchronous: only the hello waits (for a signature), and a promise per message costs (bench: tcp messages/s).
  #frame(socket: WebSocketLike, text: string): void {
    const frame = parseServerFrame(text);
    if (frame === undefined) {
      this.#socket = undefined;
      socket.close(4005, "malformed");
      this.#dropped("malformed");
      return;
    }
    switch (frame.t) {
      case "hello":
        void this.#hello(socket, frame.nonce);
        break;
      case "welcome":
        this.#id = frame.id;
        this.#opened(false);
        break;
      case "resumed":
        this.#key = this.#nextKey ?? this.#key;
        this.#nextKey = undefined;
        this.#unconfirmed = [];
        this.#acknowledged(frame.ack);
        this.#opened(true, frame.gap);
        for (const m of this.#unacked) socket.send(m.text);
        break;
      case "m":
        if (frame.s <= this.#received) break;
        this.#received = frame.s;
        this.#emit("message", frame.d);
        this.#scheduleAck(socket);
        break;
      case "ack":
        this.#acknowledged(frame.s);
        break;
      case "rejected":
        // A refused resume changed nothing: the key it offered was never taken.
        this.#nextKey = undefined;
        this.#socket = undefined;
        socket.close();
        this.#dropped(frame.reason);
        break;
      case "close":
        this.#socket = undefined;
        socket.close();
        this.#dropped(frame.reason);
        break;
      case "pong":
        break;
    }
  }

  async #hello(socket: WebSocketLike, nonce: string): Promise<void> {
    if (this.#id === undefined || this.#key === undefined) {
      this.#key ??= await newKeyPair();
      const frame = {
        t: "new",
        key: this.#key.publicKey,
        ...(this.#auth === undefined ? {} : { auth: this.#auth }),
      };
      if (socket === this.#socket) socket.send(JSON.stringify(frame));
      return;
    }
    // The next key pair is made now and used once the server confirms: the credential rotates every resume.
    const next = await (this.#spare ?? newKeyPair());
    this.#spare = undefined;
    const text = proofText(nonce, this.#id, this.#received, next.publicKey);
    const keys = [this.#key, ...this.#unconfirmed];
    const proofs = await Promise.all(keys.map((key) => sign(key.privateKey, text)));
    if (socket !== this.#socket) return;
    this.#nextKey = next;
    const frame = { t: "resume", id: this.#id, ack: this.#received, key: next.publicKey, proofs };
    socket.send(JSON.stringify(frame));
  }

  #opened(resumed: boolean, gap?: Gap): void {
    this.#ready = true;
    this.#spare ??= newKeyPair();
    // A failure here only means the resume makes its own key pair.
    this.#spare.catch(() => {
      this.#spare = undefined;
    });
    this.#attempt = 0;
    this.#state = "open";
    if (gap && gap.through > this.#received) this.#received = gap.through;
    this.#emit("open", gap ? { id: this.#id!, resumed, gap } : { id: this.#id!, resumed });
  }

  #acknowledged(through: number): void {
    let drop = 0;
    while (drop < this.#unacked.length && this.#unacked[drop]!.s <= through) drop++;
    if (drop > 0) this.#unacked.splice(0, drop);
  }

  #scheduleAck(socket: WebSocketLike): void {
    // Acks are gathered: one per 32 messages, or 50 ms after the last one.
    if (this.#received - this.#ackedSent >= 32) this.#sendAck(socket);
    else this.#ackTimer ??= setTimeout(() => this.#sendAck(socket), 50);
  }

  #sendAck(socket: WebSocketLike): void {
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    if (socket !== this.#socket || socket.readyState !== 1) return;
    this.#ackedSent = this.#received;
    socket.send(`{"t":"ack","s":${this.#received}}`);
  }

  #dropped(reason: CloseReason): void {
    this.#ready = false;
    if (this.#nextKey) {
      // The resume's answer never came: the server may have taken this key. Keep the newest few.
      this.#unconfirmed = [...this.#unconfirmed, this.#nextKey].slice(-(MAX_PROOFS - 1));
      this.#nextKey = undefined;
    }
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    if (this.#state === "closed") return;
    // A new connection refused before it had a session: nothing to resume, so start over.
    if (isRetryable(reason)) this.#retry(reason);
    else this.#stop(reason, false);
  }

  #retry(reason: CloseReason): void {
    const attempt = ++this.#attempt;
    const ceiling = Math.min(this.#maxDelayMs, this.#minDelayMs * 2 ** (attempt - 1));
    const delayMs = Math.round(Math.random() * ceiling);
    this.#state = "reconnecting";
    this.#emit("reconnecting", { attempt, delayMs, reason });
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => this.#dial(), delayMs);
  }

  #stop(reason: CloseReason, byUs: boolean): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#ready = false;
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#ackTimer);
    clearInterval(this.#pingTimer);
    const socket = this.#socket;
    this.#socket = undefined;
    if (byUs && socket) socket.close(1000, "closed");
    this.#emit("closed", { reason });
  }
}

/** Opens a resumable connection to a stowage/ws endpoint (`ws://host/live`). */
export function connect(url: string, options: ConnectOptions = {}): ClientConnection {
  return new ClientConnection(url, options);
}
