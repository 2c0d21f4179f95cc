import { generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import WebSocket from "ws";
import { proofText } from "../../src/protocol/frames.js";

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

/** A WebSocket client that speaks the protocol by hand, frame by frame. */
export class RawSocket {
  readonly ws: WebSocket;
  readonly frames: Record<string, unknown>[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  #waiters: (() => void)[] = [];

  constructor(url: string) {
    this.ws = new WebSocket(url);
    this.ws.on("message", (data) => {
      this.frames.push(JSON.parse(data.toString()) as Record<string, unknown>);
      for (const wake of this.#waiters.splice(0)) wake();
    });
    this.ws.on("error", () => undefined);
    this.closed = new Promise((resolve) =>
      this.ws.on("close", (code, reason) => {
        resolve({ code, reason: reason.toString() });
        for (const wake of this.#waiters.splice(0)) wake();
      }),
    );
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
      if (this.ws.readyState === WebSocket.CLOSED || Date.now() > deadline) return undefined;
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

  send(frame: unknown): void {
    this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  close(): void {
    this.ws.terminate();
  }
}

/** Opens a new connection session by hand; resolves its id, with the socket still open. */
export async function openRaw(url: string, key: TestKey): Promise<{ socket: RawSocket; id: string }> {
  const socket = new RawSocket(url);
  await socket.nonce();
  socket.send({ t: "new", key: key.publicKey });
  const welcome = await socket.frame("welcome");
  if (!welcome) throw new Error(`no welcome: ${JSON.stringify(await socket.closed)}`);
  return { socket, id: welcome.id as string };
}
