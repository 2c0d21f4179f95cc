import type { KeyObject } from "node:crypto";
import { connect as dial, type Socket } from "node:net";
import { ClientConnection, type ConnectOptions, type WebSocketLike } from "../client/index.js";
import { CLOSE_CODES } from "../protocol/reasons.js";
import { ClientHandshake, type FrameCipher, publicKeyOf } from "./channel.js";
import { encodeFrame, encodeText, FrameDecoder } from "./framing.js";

/** Where a TCP connection server listens: `tcp://host:port`, or host and port. */
export type TcpTarget = string | { host?: string; port: number };

/** Options of `connectTcp`: the client's (as `connect` takes them, but the socket is TCP), and the channel. */
export interface TcpConnectOptions extends Omit<ConnectOptions, "WebSocket"> {
  /** Run the encrypted channel (the server must too); with `serverKey`, only a server holding that static key is accepted. @default false */
  channel?: boolean | { serverKey: string };
  /** Largest frame accepted from the server, in bytes. @default 16 MiB */
  maxFrameBytes?: number;
}

/** What a client keeps across its sockets: the session its channel secret belongs to, and the secret. */
interface ChannelMemory {
  id: string | undefined;
  secret: Buffer | undefined;
}

const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

/**
 * Opens a resumable connection to a stowage/tcp server: the client of stowage/client (reconnects with
 * backoff, resumes with a proof, replays, stops on a terminal reason) on a TCP socket with
 * length-prefixed frames, and the encrypted channel when `channel` is set.
 */
export function connectTcp(target: TcpTarget, options: TcpConnectOptions = {}): ClientConnection {
  const { host, port } = parseTarget(target);
  const { channel, maxFrameBytes = 16 << 20, ...client } = options;
  let serverKey: KeyObject | undefined;
  if (typeof channel === "object" && channel !== null) {
    try {
      serverKey = publicKeyOf(channel.serverKey);
    } catch {
      throw new TypeError("channel.serverKey must be 32 bytes, base64url (the server's serverKey)");
    }
  }
  const encrypted = channel === true || serverKey !== undefined;
  const memory: ChannelMemory = { id: undefined, secret: undefined };
  class Socket_ extends TcpSocket {
    constructor() {
      super(host, port, maxFrameBytes, encrypted ? { serverKey, memory } : undefined);
    }
  }
  return new ClientConnection(`tcp://${host}:${port}`, { ...client, WebSocket: Socket_ });
}

function parseTarget(target: TcpTarget): { host: string; port: number } {
  if (typeof target === "string") {
    const match = /^tcp:\/\/(\[[^\]]+\]|[^:/]+):(\d{1,5})\/?$/.exec(target);
    if (!match) throw new TypeError("connectTcp needs tcp://host:port");
    return { host: match[1]!.replace(/^\[|\]$/g, ""), port: Number(match[2]) };
  }
  if (!Number.isInteger(target.port) || target.port < 1 || target.port > 65535) {
    throw new TypeError("connectTcp needs a port from 1 to 65535");
  }
  return { host: target.host ?? "127.0.0.1", port: target.port };
}

/**
 * A TCP socket as the WebSocket the client core drives: one frame per message, the close reason from the
 * server's close frame (which the core reads itself), `lost` (code 1006) when the stream just ends, and
 * `malformed` (4005) when a frame cannot be read or the channel cannot be trusted.
 */
class TcpSocket implements WebSocketLike {
  readyState = 0;
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  readonly #socket: Socket;
  readonly #decoder: FrameDecoder;
  readonly #channel: { serverKey: KeyObject | undefined; memory: ChannelMemory } | undefined;
  #handshake: ClientHandshake | undefined;
  #send: FrameCipher | undefined;
  #receive: FrameCipher | undefined;
  /** This socket's channel secret, and whether the stored one went into it. */
  #secret: { value: Buffer; mixed: boolean } | undefined;
  /** Until the server says welcome or resumed, frames are looked at for the session they name. */
  #watching: boolean;
  #code: number | undefined;

  constructor(
    host: string,
    port: number,
    maxFrameBytes: number,
    channel: { serverKey: KeyObject | undefined; memory: ChannelMemory } | undefined,
  ) {
    this.#channel = channel;
    this.#watching = channel !== undefined;
    this.#decoder = new FrameDecoder(maxFrameBytes);
    this.#socket = dial({ host, port, noDelay: true });
    this.#socket.on("connect", () => this.#connected());
    this.#socket.on("data", (chunk: Buffer) => this.#data(chunk));
    this.#socket.on("error", (error) => this.onerror?.(error));
    this.#socket.on("close", () => {
      this.readyState = CLOSED;
      this.onclose?.({ code: this.#code ?? 1006, reason: "" });
    });
  }

  send(text: string): void {
    if (this.readyState !== OPEN) return;
    this.#socket.write(this.#send ? this.#send.sealText(text) : encodeText(text));
  }

  close(code = 1000): void {
    if (this.readyState >= CLOSING) return;
    this.readyState = CLOSING;
    this.#code ??= code;
    this.#socket.end();
    setTimeout(() => this.#socket.destroy(), 1000).unref();
  }

  #connected(): void {
    const channel = this.#channel;
    if (!channel) {
      this.#opened();
      return;
    }
    const { id, secret } = channel.memory;
    this.#handshake = new ClientHandshake(
      id !== undefined && secret ? { id, secret } : undefined,
      channel.serverKey,
    );
    this.#socket.write(encodeFrame(this.#handshake.hello));
  }

  #opened(): void {
    this.readyState = OPEN;
    this.onopen?.({});
  }

  #data(chunk: Buffer): void {
    const bodies = this.#decoder.push(chunk);
    if (bodies === undefined) {
      this.#fail();
      return;
    }
    for (const body of bodies) {
      if (this.readyState >= CLOSING) return;
      this.#body(body);
    }
  }

  #body(body: Buffer): void {
    const handshake = this.#handshake;
    if (handshake) {
      this.#handshake = undefined;
      const keys = handshake.finish(body);
      if (typeof keys === "string") {
        this.#fail();
        return;
      }
      this.#send = keys.send;
      this.#receive = keys.receive;
      this.#secret = { value: keys.secret, mixed: keys.secretMixed };
      this.#opened();
      return;
    }
    const plain = this.readyState !== OPEN ? null : this.#receive ? this.#receive.open(body) : body;
    if (plain === null) {
      this.#fail();
      return;
    }
    const text = plain.toString("utf8");
    if (this.#watching) this.#watch(text);
    this.onmessage?.({ data: text });
  }

  /**
   * A session's channel secret is the one its first connection derived: kept once the server welcomes
   * the session (it has sealed the same secret), and replaced only when a resume did not mix one in
   * (the session had none, and the server now keeps this connection's).
   */
  #watch(text: string): void {
    const welcome = text.startsWith('{"t":"welcome"');
    if (!welcome && !text.startsWith('{"t":"resumed"') && !text.startsWith('{"t":"rejected"')) return;
    this.#watching = false;
    const secret = this.#secret;
    const memory = this.#channel!.memory;
    if (!secret || text.startsWith('{"t":"rejected"')) return;
    const { id } = JSON.parse(text) as { id: string };
    if (welcome || !secret.mixed) {
      memory.id = id;
      memory.secret = secret.value;
    }
  }

  #fail(): void {
    this.#code ??= CLOSE_CODES.malformed;
    this.readyState = CLOSING;
    this.#socket.destroy();
  }
}
