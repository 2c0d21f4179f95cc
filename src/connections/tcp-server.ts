import type { KeyObject } from "node:crypto";
import { type AddressInfo, createServer, type Server, type Socket } from "node:net";
import { isStowageError } from "../core/errors.js";
import { OptionChecker } from "../core/options.js";
import type { Attributes } from "../core/record.js";
import type { CloseReason } from "../protocol/reasons.js";
import {
  answerHello,
  CHANNEL_ALGORITHM,
  DEFAULT_REKEY,
  type FrameCipher,
  MAX_HELLO_BYTES,
  parseClientHello,
  privateKeyOf,
  publicHalf,
  type RekeyBounds,
} from "./channel.js";
import { encodeFrame, encodeTexts, FrameDecoder } from "./framing.js";
import {
  type ChannelBinding,
  CONNECTION_OPTIONS,
  type ConnectionOptions,
  ConnectionServer,
  type Peer,
  type StoredSecret,
  type Transport,
} from "./server.js";

/** What `authenticate` learns of a new TCP connection. */
export interface TcpRequest {
  /** The client's address, as the socket reports it. */
  readonly remoteAddress: string | undefined;
  /** The client's port. */
  readonly remotePort: number | undefined;
  /** True when the connection runs the encrypted channel. */
  readonly encrypted: boolean;
}

/** The encrypted channel of a TCP connection server. */
export interface TcpChannelOptions {
  /** The server's static X25519 private key (32 bytes, base64url; `generateChannelKey`); clients pin its public half. */
  staticKey?: string;
  /** After how many frames or plaintext bytes, in one direction, a traffic key is replaced. @default { frames: 2^20, bytes: 2^30 } */
  rekey?: Partial<RekeyBounds>;
}

/** Options of `createTcpConnectionServer`: the protocol's, and where and how it listens. */
export interface TcpConnectionOptions<A extends object = Attributes>
  extends ConnectionOptions<A, TcpRequest> {
  /** Port to listen on (0: any free one). */
  port: number;
  /** Host to listen on. @default "127.0.0.1" */
  host?: string;
  /** Encrypt every connection (X25519, ChaCha20-Poly1305); needs the manager's `keys`. @default false */
  channel?: boolean | TcpChannelOptions;
  /** A frame begun and not finished within this many ms closes its connection as `malformed`. @default 10000 */
  frameTimeoutMs?: number;
}

const TCP_OPTIONS = ["port", "host", "channel", "frameTimeoutMs"] as const;
const MAX_BOUND = 2 ** 32 - 1;

interface ChannelSettings {
  staticKey: KeyObject | undefined;
  rekey: RekeyBounds;
}

/**
 * Resumable connections over raw TCP (`node:net`): length-prefixed frames carrying the same protocol as
 * stowage/ws (hello, new or resume with a proof, replay, takeover, reasons), optionally inside an
 * encrypted channel whose keys are fresh on every connection. See docs/connections.md.
 */
export class TcpConnectionServer<A extends object = Attributes> extends ConnectionServer<A, TcpRequest> {
  /** The net.Server the connections come to. */
  readonly server: Server;
  /** Resolves once the server listens. */
  readonly ready: Promise<void>;
  /** The static key's public half (base64url) for clients to pin; undefined without a static key. */
  readonly serverKey: string | undefined;
  /** @internal Channel settings, when connections are encrypted. */
  readonly channel: ChannelSettings | undefined;
  /** @internal How long a partial frame may wait for the rest. */
  readonly frameTimeoutMs: number;
  readonly #transports = new Set<TcpTransport<A>>();
  readonly #beat: NodeJS.Timeout;

  constructor(options: TcpConnectionOptions<A>) {
    super(options, TCP_OPTIONS);
    const check = new OptionChecker("createTcpConnectionServer", options, [
      ...CONNECTION_OPTIONS,
      ...TCP_OPTIONS,
    ]);
    const port = check.raw("port");
    if (!Number.isInteger(port) || (port as number) < 0 || (port as number) > 65535) {
      throw check.error("port must be a whole number from 0 to 65535");
    }
    const host = check.text("host", "127.0.0.1");
    this.frameTimeoutMs = check.ms("frameTimeoutMs", 10_000);
    this.channel = channelSettings(check, options.channel);
    if (this.channel && !this.sessions.keys) {
      throw check.error("channel needs the manager's keys option: its secrets are sealed with the key ring");
    }
    this.serverKey = this.channel?.staticKey ? publicHalf(this.channel.staticKey) : undefined;
    this.server = createServer({ noDelay: true }, (socket) => this.#attach(socket));
    this.ready = new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port as number, host, () => resolve());
    });
    this.#beat = setInterval(() => this.#heartbeat(), this.settings.heartbeatMs).unref();
  }

  /** The address the server listens on, once ready. */
  address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  /** @internal A channel handshake named session `id`: its stored secret, opened. */
  lookupSecret(id: string): Promise<StoredSecret> {
    return this.storedSecret(id);
  }

  /** @internal A client hello that is none: the transport is cut, and listeners hear why. */
  refusedHello(): void {
    this.emit("rejected", { reason: "malformed", detail: "the first frame is not a channel hello" });
  }

  /** @internal A background failure of a transport. */
  failed(error: unknown): void {
    this.emit("error", error instanceof Error ? error : new Error(String(error)));
  }

  /** @internal A transport is gone. */
  forget(transport: TcpTransport<A>): void {
    this.#transports.delete(transport);
  }

  #attach(socket: Socket): void {
    const transport = new TcpTransport<A>(this, socket);
    this.#transports.add(transport);
    transport.start();
  }

  #heartbeat(): void {
    // Clients ping every half heartbeat; a transport that said nothing for a whole one is half-open.
    for (const transport of this.#transports) transport.beat();
  }

  override async close(): Promise<void> {
    clearInterval(this.#beat);
    await super.close();
    for (const transport of this.#transports) transport.destroy();
    if (this.server.listening) await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

function channelSettings(
  check: OptionChecker,
  given: TcpConnectionOptions["channel"] | undefined,
): ChannelSettings | undefined {
  if (given === undefined || given === false) return undefined;
  if (given === true) return { staticKey: undefined, rekey: DEFAULT_REKEY };
  if (typeof given !== "object" || given === null)
    throw check.error("channel must be true, false or an object");
  const inner = new OptionChecker("createTcpConnectionServer channel", given, ["staticKey", "rekey"]);
  const raw = inner.raw("staticKey");
  let staticKey: KeyObject | undefined;
  if (raw !== undefined) {
    try {
      staticKey = privateKeyOf(raw as string);
    } catch {
      throw inner.error("staticKey must be 32 bytes, base64url (generateChannelKey().privateKey)");
    }
  }
  const rekey = new OptionChecker("createTcpConnectionServer channel.rekey", inner.raw("rekey") ?? {}, [
    "frames",
    "bytes",
  ]);
  const bounds = {
    frames: rekey.count("frames", DEFAULT_REKEY.frames),
    bytes: rekey.bytes("bytes", DEFAULT_REKEY.bytes),
  };
  if (bounds.frames > MAX_BOUND || bounds.bytes > MAX_BOUND)
    throw rekey.error("rekey bounds must be below 2^32");
  return { staticKey, rekey: bounds };
}

/**
 * One TCP socket as the protocol's transport: frames cut from the stream, and (when the server encrypts)
 * the channel handshake first, then every frame sealed and opened with the channel's keys.
 */
class TcpTransport<A extends object> implements Transport {
  channel: ChannelBinding | undefined;
  readonly #server: TcpConnectionServer<A>;
  readonly #socket: Socket;
  readonly #decoder: FrameDecoder;
  #peer: Peer | undefined;
  #send: FrameCipher | undefined;
  #receive: FrameCipher | undefined;
  /** Frames that came while the channel handshake looked up the stored secret. */
  #early: Buffer[] | undefined;
  #phase: "hello" | "lookup" | "open" = "hello";
  #stall: NodeJS.Timeout | undefined;
  #helloTimer: NodeJS.Timeout | undefined;
  #alive = true;
  #ended = false;
  /** A frame failed to open or to frame: nothing after it is read. */
  #broken = false;
  /** Frames of this turn, not yet written. */
  #queued: string[] = [];

  constructor(server: TcpConnectionServer<A>, socket: Socket) {
    this.#server = server;
    this.#socket = socket;
    this.#decoder = new FrameDecoder(server.settings.maxFrameBytes + 64);
  }

  start(): void {
    const socket = this.#socket;
    socket.on("data", (chunk: Buffer) => this.#data(chunk));
    socket.on("error", () => undefined);
    socket.on("close", () => this.#closed());
    // A client that stops the stream mid-frame sent a truncated frame.
    socket.on("end", () => {
      if (this.#decoder.partial) this.#malformed();
      else socket.end();
    });
    if (this.#server.channel) {
      this.#helloTimer = setTimeout(() => this.destroy(), this.#server.settings.handshakeTimeoutMs).unref();
    } else {
      this.#open();
    }
  }

  write(text: string): void {
    if (this.#ended || this.#socket.destroyed) return;
    // Frames written in one turn leave in one buffer and one write (bench: tcp messages/s): a write per
    // frame, even corked, costs more than the frames themselves.
    if (this.#queued.push(text) === 1) process.nextTick(this.#flush);
  }

  readonly #flush = (): void => {
    const texts = this.#queued;
    this.#queued = [];
    // end() flushes what is queued itself; a write after it would fail and reset the connection.
    if (texts.length === 0 || this.#socket.destroyed || this.#socket.writableEnded) return;
    if (this.#send) {
      const cipher = this.#send;
      this.#socket.write(
        texts.length === 1 ? cipher.sealText(texts[0]!) : Buffer.concat(texts.map((t) => cipher.sealText(t))),
      );
      return;
    }
    this.#socket.write(encodeTexts(texts));
  };

  end(_reason: CloseReason): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#queued.length > 0) this.#flush();
    this.#socket.end();
    // A client that never closes its side is cut after a second.
    setTimeout(() => this.#socket.destroy(), 1000).unref();
  }

  destroy(): void {
    this.#socket.destroy();
  }

  beat(): void {
    if (!this.#alive) this.#socket.destroy();
    this.#alive = false;
  }

  #open(): void {
    this.#phase = "open";
    const { remoteAddress, remotePort } = this.#socket;
    this.#peer = this.#server.accept(this, {
      remoteAddress,
      remotePort,
      encrypted: this.#send !== undefined,
    });
    const early = this.#early;
    this.#early = undefined;
    for (const body of early ?? []) this.#body(body);
  }

  #data(chunk: Buffer): void {
    this.#alive = true;
    // After a frame that could not be read nothing more is: bytes still coming are dropped, not kept.
    if (this.#broken) return;
    const bodies = this.#decoder.push(chunk);
    if (bodies === undefined) {
      // A prefix past the bound: no frame after it can be found, and nothing of it is kept.
      this.#malformed();
      return;
    }
    for (const body of bodies) {
      if (this.#ended) return;
      this.#body(body);
    }
    if (!this.#decoder.partial) {
      clearTimeout(this.#stall);
      this.#stall = undefined;
    } else if (this.#stall === undefined) {
      this.#stall = setTimeout(() => this.#malformed(), this.#server.frameTimeoutMs).unref();
    }
  }

  #body(body: Buffer): void {
    if (this.#broken) return;
    switch (this.#phase) {
      case "hello":
        this.#hello(body);
        return;
      case "lookup":
        this.#early!.push(body);
        return;
      case "open": {
        if (!this.#receive) {
          this.#peer!.receive(body.toString("utf8"));
          return;
        }
        const plain = this.#receive.open(body);
        if (plain === null) this.#malformed();
        else this.#peer!.receive(plain.toString("utf8"));
      }
    }
  }

  /** The channel handshake: the client hello, then (for a resume) the session's stored secret. */
  #hello(body: Buffer): void {
    const hello = body.length <= MAX_HELLO_BYTES ? parseClientHello(body) : undefined;
    if (!hello) {
      // Nothing can be said to a client that has no channel yet; it is cut.
      this.#server.refusedHello();
      this.destroy();
      return;
    }
    this.#phase = "lookup";
    this.#early = [];
    const settings = this.#server.channel!;
    const finish = (stored: StoredSecret, id: string | undefined, failure?: string) => {
      clearTimeout(this.#helloTimer);
      if (this.#socket.destroyed) return;
      const opened = stored && "secret" in stored ? stored : undefined;
      const { serverHello, keys } = answerHello({
        clientHello: body,
        parsed: hello,
        staticKey: settings.staticKey,
        secret: opened?.secret,
        bounds: settings.rekey,
      });
      this.#socket.write(encodeFrame(serverHello));
      this.#send = keys.send;
      this.#receive = keys.receive;
      const unopened =
        id === undefined
          ? undefined
          : failure !== undefined
            ? { id, reason: "unavailable" as const, detail: failure }
            : stored && "missing" in stored
              ? { id, reason: "expired" as const, detail: stored.missing }
              : undefined;
      const binding: ChannelBinding = {
        algorithm: CHANNEL_ALGORITHM,
        secret: keys.secret,
        ...(id !== undefined && opened ? { resumed: { id, ...opened } } : {}),
        ...(unopened ? { unopened } : {}),
      };
      this.channel = binding;
      this.#open();
    };
    const id = hello.resume;
    if (id === undefined) {
      finish(undefined, undefined);
      return;
    }
    this.#server.lookupSecret(id).then(
      (stored) => finish(stored, id),
      (error: unknown) => {
        if (!isStowageError(error, "STORE_UNAVAILABLE")) this.#server.failed(error);
        finish(undefined, id, "the store could not be read for the channel secret");
      },
    );
  }

  /** A frame that cannot be read: the protocol closes with `malformed` (and the channel is not used again). */
  #malformed(): void {
    if (this.#broken) return;
    this.#broken = true;
    if (this.#peer) this.#peer.receive("");
    else this.destroy();
  }

  #closed(): void {
    clearTimeout(this.#stall);
    clearTimeout(this.#helloTimer);
    this.#server.forget(this);
    this.#peer?.lost();
  }
}

/** Resumable connections over raw TCP; see `TcpConnectionServer` and docs/connections.md. */
export function createTcpConnectionServer<A extends object = Attributes>(
  options: TcpConnectionOptions<A>,
): TcpConnectionServer<A> {
  return new TcpConnectionServer<A>(options);
}
