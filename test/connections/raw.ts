import { generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { createConnection, type Socket } from "node:net";
import WebSocket from "ws";
import { ClientHandshake, type OpenChannel, publicKeyOf } from "../../src/connections/channel.js";
import { encodeFrame, FrameDecoder } from "../../src/connections/framing.js";
import { proofText } from "../../src/protocol/frames.js";
import { CLOSE_CODES } from "../../src/protocol/reasons.js";
import { type Wire, wireOf } from "./harness.js";

/** An Ed25519 key pair whose private half the test can see (the real client's is not extractable). */
export interface TestKey {
  publicKey: string;
  privateKey: KeyObject;
  /** The private key's raw 32-byte seed, base64url, to look for in store dumps. */
  seed: string;
}

export function testKey(): TestKey {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const pub = publicKey.export({ format: "jwk" }).x!;
  const seed = privateKey.export({ format: "jwk" }).d!;
  return { publicKey: pub, privateKey, seed };
}

export function proof(key: TestKey, nonce: string, id: string, ack: number, next: string): string {
  return sign(null, Buffer.from(proofText(nonce, id, ack, next)), key.privateKey).toString("base64url");
}

/** A channel secret a raw TCP client keeps for its session's resumes. */
export interface RawResume {
  id: string;
  secret: Buffer;
}

/**
 * A client that speaks the protocol by hand, frame by frame, on the wire its URL names: a WebSocket, or
 * a TCP socket with length-prefixed frames (and the encrypted channel on `tcp+channel://`; `resume`
 * names the session whose stored secret the channel hello mixes in).
 */
export class RawSocket {
  readonly frames: Record<string, unknown>[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly wire: Wire;
  /** The WebSocket, on ws. */
  readonly ws: WebSocket | undefined;
  /** The TCP socket, on tcp. */
  readonly tcp: Socket | undefined;
  /** This connection's channel: its ciphers and the secret a new session keeps. */
  channel: OpenChannel | undefined;
  /** Every TCP frame written, as it went on the wire (sealed on the channel). */
  readonly written: Buffer[] = [];
  /** Every TCP frame body received, as it came (sealed on the channel). */
  readonly received: Buffer[] = [];
  #open: Promise<void>;
  #reason: string | undefined;
  #waiters: (() => void)[] = [];
  #done = false;

  constructor(url: string, options: { resume?: RawResume; serverKey?: string } = {}) {
    this.wire = wireOf(url);
    let resolveClosed!: (value: { code: number; reason: string }) => void;
    this.closed = new Promise((resolve) => {
      resolveClosed = resolve;
    });
    const finished = (code: number, reason: string) => {
      this.#done = true;
      resolveClosed({ code, reason });
      for (const wake of this.#waiters.splice(0)) wake();
    };
    if (this.wire === "ws") {
      const ws = new WebSocket(url);
      this.ws = ws;
      this.#open = Promise.resolve();
      ws.on("message", (data) => this.#frame(data.toString()));
      ws.on("error", () => undefined);
      ws.on("close", (code, reason) => finished(code, reason.toString()));
      return;
    }
    const { hostname, port } = new URL(url.replace(/^tcp(\+channel)?:/, "http:"));
    const tcp = createConnection({ host: hostname, port: Number(port) });
    this.tcp = tcp;
    const decoder = new FrameDecoder(64 << 20);
    const handshake =
      this.wire === "tcp+channel"
        ? new ClientHandshake(options.resume, options.serverKey ? publicKeyOf(options.serverKey) : undefined)
        : undefined;
    let ready!: () => void;
    this.#open = new Promise((resolve) => {
      ready = resolve;
    });
    tcp.on("connect", () => {
      if (handshake) tcp.write(encodeFrame(handshake.hello));
      else ready();
    });
    tcp.on("data", (chunk: Buffer) => {
      for (const body of decoder.push(chunk) ?? []) {
        if (handshake && !this.channel) {
          const keys = handshake.finish(body);
          if (typeof keys === "string") throw new Error(`channel: ${keys}`);
          this.channel = keys;
          ready();
          continue;
        }
        const plain = this.channel ? this.channel.receive.open(body) : body;
        if (plain === null) throw new Error("a server frame did not open");
        this.received.push(body);
        this.#frame(plain.toString("utf8"));
      }
    });
    tcp.on("error", () => undefined);
    tcp.on("close", () => {
      const reason = this.#reason;
      finished(reason && reason in CLOSE_CODES ? CLOSE_CODES[reason as "closed"] : 1006, reason ?? "");
    });
  }

  #frame(text: string): void {
    const frame = JSON.parse(text) as Record<string, unknown>;
    if (frame.t === "close" || frame.t === "rejected") this.#reason = frame.reason as string;
    this.frames.push(frame);
    for (const wake of this.#waiters.splice(0)) wake();
  }

  /** The next frame of type `t` (waiting for it), or undefined if the socket closes first. */
  async frame(t: string, ms = 5000): Promise<Record<string, unknown> | undefined> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.frames.find((f) => f.t === t);
      if (found) {
        this.frames.splice(this.frames.indexOf(found), 1);
        return found;
      }
      if (this.#done || Date.now() > deadline) return undefined;
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 20);
      });
    }
  }

  async nonce(): Promise<string> {
    const hello = await this.frame("hello");
    if (!hello) throw new Error("no hello");
    return hello.nonce as string;
  }

  /** Sends a frame (an object as JSON, or text as it is). */
  send(frame: unknown): void {
    this.sendRaw(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  /** Resolves once the socket can send (on the channel: once its handshake is done). */
  ready(): Promise<void> {
    return this.#open;
  }

  /** Sends text, or bytes (a binary WebSocket message; a TCP frame body that is not UTF-8 JSON). */
  sendRaw(data: string | Uint8Array): void {
    if (this.ws) {
      this.ws.send(data);
      return;
    }
    const body = typeof data === "string" ? Buffer.from(data) : Buffer.from(data);
    void this.#open.then(() => {
      const frame = this.channel ? this.channel.send.seal(body) : encodeFrame(body);
      this.written.push(frame);
      this.tcp!.write(frame);
    });
  }

  close(): void {
    if (this.ws) this.ws.terminate();
    else this.tcp!.destroy();
  }
}

/** Opens a new connection session by hand; resolves its id, with the socket still open. */
export async function openRaw(
  url: string,
  key: TestKey,
): Promise<{ socket: RawSocket; id: string; resume: RawResume | undefined }> {
  const socket = new RawSocket(url);
  await socket.nonce();
  socket.send({ t: "new", key: key.publicKey });
  const welcome = await socket.frame("welcome");
  if (!welcome) throw new Error(`no welcome: ${JSON.stringify(await socket.closed)}`);
  const id = welcome.id as string;
  return { socket, id, resume: socket.channel ? { id, secret: socket.channel.secret } : undefined };
}
