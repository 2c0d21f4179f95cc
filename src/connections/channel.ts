// The encrypted channel of stowage/tcp (docs/resume-protocol.md, "The encrypted channel"): an X25519
// exchange on every connection, mixed with the server's static key when it has one and with the
// session's stored secret on a resume, then ChaCha20-Poly1305 frames with a counter per direction.
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  type KeyObject,
} from "node:crypto";
import { HEADER_BYTES } from "./framing.js";

/** The channel's cipher suite, as connection records name it. */
export const CHANNEL_ALGORITHM = "x25519-chacha20poly1305";

/** Version byte of the channel handshake. */
const VERSION = 1;
const LABEL = "stowage-tcp/1";
const TAG_BYTES = 16;
const ID_BYTES = 16;
const CLIENT_HELLO_NEW = 2 + 32;
const CLIENT_HELLO_RESUME = CLIENT_HELLO_NEW + ID_BYTES;
/** Bytes of the server hello: version, flags, ephemeral key, rekey bounds. */
export const SERVER_HELLO_BYTES = 2 + 32 + 8;
/** The longest channel handshake frame either side sends. */
export const MAX_HELLO_BYTES = CLIENT_HELLO_RESUME;

const FLAG_RESUME = 1;
const FLAG_SECRET_MIXED = 1;
const FLAG_STATIC_MIXED = 2;

// The PKCS#8 prefix of an X25519 private key (RFC 8410): the raw 32 bytes follow it.
const PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");

/** After how many frames or bytes (in one direction) its key is replaced by the next one. */
export interface RekeyBounds {
  /** Frames under one key. */
  frames: number;
  /** Plaintext bytes under one key. */
  bytes: number;
}

/** The default bounds: far inside ChaCha20-Poly1305's limits, so a stolen traffic key opens little. */
export const DEFAULT_REKEY: RekeyBounds = { frames: 1 << 20, bytes: 2 ** 30 };

/** An X25519 key pair for a server's static key, raw and base64url: the private half for the server, the public half to pin. */
export interface ChannelKeyPair {
  /** 32 bytes, base64url: `channel.staticKey` of the server. Keep it secret. */
  privateKey: string;
  /** 32 bytes, base64url: `channel.serverKey` of the clients, which pin it. */
  publicKey: string;
}

/** A new static key pair for a server (CSPRNG). */
export function generateChannelKey(): ChannelKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync("x25519");
  return {
    privateKey: rawPrivate(privateKey).toString("base64url"),
    publicKey: rawPublic(publicKey).toString("base64url"),
  };
}

// JWK rather than DER on the per-handshake paths: OpenSSL's DER encoders and decoders cost more than the
// X25519 exchange itself (bench: tcp handshakes/s).
function rawPublic(key: KeyObject): Buffer {
  return Buffer.from(key.export({ format: "jwk" }).x!, "base64url");
}

function rawPrivate(key: KeyObject): Buffer {
  return key.export({ format: "der", type: "pkcs8" }).subarray(PKCS8_PREFIX.length);
}

/** The private key object of raw base64url text; a TypeError when it is not 32 bytes of it. */
export function privateKeyOf(raw: string): KeyObject {
  const bytes = Buffer.from(raw, "base64url");
  if (bytes.length !== 32 || bytes.toString("base64url") !== raw) {
    throw new TypeError("a channel key must be 32 bytes, base64url");
  }
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, bytes]), format: "der", type: "pkcs8" });
}

/** The public key object of raw base64url text; a TypeError when it is not 32 bytes of it. */
export function publicKeyOf(raw: string | Uint8Array): KeyObject {
  const bytes = typeof raw === "string" ? Buffer.from(raw, "base64url") : Buffer.from(raw);
  if (bytes.length !== 32 || (typeof raw === "string" && bytes.toString("base64url") !== raw)) {
    throw new TypeError("a channel key must be 32 bytes, base64url");
  }
  return createPublicKey({
    key: { kty: "OKP", crv: "X25519", x: bytes.toString("base64url") },
    format: "jwk",
  });
}

/** The public half of a static private key, raw base64url. */
export function publicHalf(privateKey: KeyObject): string {
  return rawPublic(createPublicKey(privateKey)).toString("base64url");
}

/**
 * One direction of an open channel: a ChaCha20-Poly1305 key, the frame counter as its nonce, and the
 * rekey bounds. The frame's length prefix is authenticated with it, so a cut or padded frame fails.
 */
export class FrameCipher {
  #key: Buffer;
  #counter = 0;
  #bytes = 0;
  readonly #bounds: RekeyBounds;
  readonly #nonce = Buffer.alloc(12);
  readonly #header = Buffer.alloc(HEADER_BYTES);

  constructor(key: Buffer, bounds: RekeyBounds) {
    this.#key = key;
    this.#bounds = bounds;
  }

  /** How many times the key has been replaced. */
  generation = 0;

  /** The frame (prefix and sealed body) of `plain`. */
  seal(plain: Uint8Array): Buffer {
    const frame = Buffer.allocUnsafe(HEADER_BYTES + plain.length + TAG_BYTES);
    frame.set(plain, HEADER_BYTES);
    return this.#sealIn(frame, plain.length);
  }

  /** The frame of `text`'s UTF-8, encoded once into the frame itself. */
  sealText(text: string): Buffer {
    const length = Buffer.byteLength(text);
    const frame = Buffer.allocUnsafe(HEADER_BYTES + length + TAG_BYTES);
    frame.write(text, HEADER_BYTES);
    return this.#sealIn(frame, length);
  }

  /** Seals the `length` plaintext bytes that follow the prefix of `frame`, and fills in prefix and tag. */
  #sealIn(frame: Buffer, length: number): Buffer {
    frame.writeUInt32BE(length + TAG_BYTES, 0);
    const cipher = createCipheriv("chacha20-poly1305", this.#key, this.#next(), { authTagLength: TAG_BYTES });
    cipher.setAAD(frame.subarray(0, HEADER_BYTES), { plaintextLength: length });
    cipher.update(frame.subarray(HEADER_BYTES, HEADER_BYTES + length)).copy(frame, HEADER_BYTES);
    cipher.final();
    cipher.getAuthTag().copy(frame, HEADER_BYTES + length);
    this.#advance(length);
    return frame;
  }

  /**
   * The plaintext of one frame body (what follows its prefix); null when it does not authenticate:
   * tampered, cut, replayed, reordered, or sealed under another key. After null the channel is useless.
   */
  open(body: Buffer): Buffer | null {
    if (body.length < TAG_BYTES) return null;
    const length = body.length - TAG_BYTES;
    const header = this.#header;
    header.writeUInt32BE(body.length, 0);
    try {
      const decipher = createDecipheriv("chacha20-poly1305", this.#key, this.#next(), {
        authTagLength: TAG_BYTES,
      });
      decipher.setAAD(header, { plaintextLength: length });
      decipher.setAuthTag(body.subarray(length));
      const plain = decipher.update(body.subarray(0, length));
      decipher.final();
      this.#advance(length);
      return plain;
    } catch {
      return null;
    }
  }

  #next(): Buffer {
    // 4 zero bytes and the 64-bit frame counter: each key seals at most `bounds.frames` frames.
    this.#nonce.writeBigUInt64BE(BigInt(this.#counter), 4);
    return this.#nonce;
  }

  #advance(length: number): void {
    this.#counter++;
    this.#bytes += length;
    if (this.#counter < this.#bounds.frames && this.#bytes < this.#bounds.bytes) return;
    // Both ends count the same frames, so both step to the next key at the same frame, with no message.
    this.#key = Buffer.from(hkdfSync("sha256", this.#key, Buffer.alloc(0), `${LABEL} rekey`, 32));
    this.#counter = 0;
    this.#bytes = 0;
    this.generation++;
  }
}

/** An open channel: one cipher each way, and the secret a new session keeps for its resumes. */
export interface OpenChannel {
  /** Seals what this end sends. */
  send: FrameCipher;
  /** Opens what this end receives. */
  receive: FrameCipher;
  /** Derived for this connection; a new session keeps it (sealed) and mixes it into every resume. */
  secret: Buffer;
  /** True when the stored secret was mixed into these keys (a resume the server could vouch for). */
  secretMixed: boolean;
}

interface Schedule {
  ee: Buffer;
  es: Buffer | undefined;
  secret: Buffer | undefined;
  clientHello: Buffer;
  serverHello: Buffer;
  bounds: RekeyBounds;
}

/**
 * The key schedule: HKDF-SHA256 over the exchanges (ephemeral–ephemeral, and ephemeral–static when the
 * server has a static key) salted with the stored secret, its info bound to both hellos. The ephemeral
 * keys are new on every connection, so no two connections ever share a traffic key.
 */
function schedule(s: Schedule): { c2s: Buffer; s2c: Buffer; secret: Buffer } {
  const transcript = createHash("sha256").update(LABEL).update(s.clientHello).update(s.serverHello).digest();
  const ikm = s.es ? Buffer.concat([s.ee, s.es]) : s.ee;
  const salt = s.secret ?? Buffer.alloc(0);
  const derive = (label: string) =>
    Buffer.from(
      hkdfSync("sha256", ikm, salt, Buffer.concat([Buffer.from(`${LABEL} ${label}`), transcript]), 32),
    );
  return { c2s: derive("c2s"), s2c: derive("s2c"), secret: derive("resumption") };
}

/** A client hello that asks to resume names a session; the server looks up its stored secret. */
export interface ParsedClientHello {
  /** The client's ephemeral public key. */
  key: KeyObject;
  /** The session to resume (base64url), when the client has one. */
  resume: string | undefined;
}

/** The client hello of a frame body; undefined when it is not one. */
export function parseClientHello(body: Buffer): ParsedClientHello | undefined {
  if (body[0] !== VERSION) return undefined;
  const resume = body[1] === FLAG_RESUME;
  if (body.length !== (resume ? CLIENT_HELLO_RESUME : CLIENT_HELLO_NEW) || (body[1] ?? 0) > FLAG_RESUME) {
    return undefined;
  }
  let key: KeyObject;
  try {
    key = publicKeyOf(body.subarray(2, 34));
  } catch {
    return undefined;
  }
  return { key, resume: resume ? body.subarray(34).toString("base64url") : undefined };
}

/** What the server side of the handshake needs. */
export interface ServerHandshake {
  clientHello: Buffer;
  parsed: ParsedClientHello;
  /** The server's static key, when it has one. */
  staticKey: KeyObject | undefined;
  /** The resumed session's stored secret, when the hello named one the server could open. */
  secret: Buffer | undefined;
  bounds: RekeyBounds;
}

/** The server's answer to a client hello: the server hello body, and the open channel. */
export function answerHello(h: ServerHandshake): { serverHello: Buffer; keys: OpenChannel } {
  const own = generateKeyPairSync("x25519");
  const serverHello = Buffer.alloc(SERVER_HELLO_BYTES);
  serverHello[0] = VERSION;
  serverHello[1] = (h.secret ? FLAG_SECRET_MIXED : 0) | (h.staticKey ? FLAG_STATIC_MIXED : 0);
  rawPublic(own.publicKey).copy(serverHello, 2);
  serverHello.writeUInt32BE(h.bounds.frames, 34);
  serverHello.writeUInt32BE(h.bounds.bytes, 38);
  const { c2s, s2c, secret } = schedule({
    ee: diffieHellman({ privateKey: own.privateKey, publicKey: h.parsed.key }),
    es: h.staticKey ? diffieHellman({ privateKey: h.staticKey, publicKey: h.parsed.key }) : undefined,
    secret: h.secret,
    clientHello: h.clientHello,
    serverHello,
    bounds: h.bounds,
  });
  return {
    serverHello,
    keys: {
      send: new FrameCipher(s2c, h.bounds),
      receive: new FrameCipher(c2s, h.bounds),
      secret,
      secretMixed: h.secret !== undefined,
    },
  };
}

/** Why the client side of a handshake failed. */
export type ClientHandshakeFailure = "malformed" | "unpinned" | "not-pinned-key";

/** The client side of the handshake: its hello, then the keys once the server hello arrives. */
export class ClientHandshake {
  /** The client hello body, to send first. */
  readonly hello: Buffer;
  readonly #own = generateKeyPairSync("x25519");
  readonly #serverKey: KeyObject | undefined;
  readonly #secret: Buffer | undefined;

  /**
   * `resume`: the session and its stored secret, when the client has one; `serverKey`: the pinned
   * static key of the server, when the client pins one.
   */
  constructor(resume: { id: string; secret: Buffer } | undefined, serverKey: KeyObject | undefined) {
    this.#serverKey = serverKey;
    this.#secret = resume?.secret;
    const hello = Buffer.alloc(resume ? CLIENT_HELLO_RESUME : CLIENT_HELLO_NEW);
    hello[0] = VERSION;
    hello[1] = resume ? FLAG_RESUME : 0;
    rawPublic(this.#own.publicKey).copy(hello, 2);
    if (resume) Buffer.from(resume.id, "base64url").copy(hello, 34);
    this.hello = hello;
  }

  /**
   * The keys, from the server hello body; or why the server cannot be trusted with them: a static key
   * the client did not pin, no static key where the client pinned one, or (with no static key) a
   * resume whose stored secret the server left out.
   */
  finish(serverHello: Buffer): OpenChannel | ClientHandshakeFailure {
    if (serverHello.length !== SERVER_HELLO_BYTES || serverHello[0] !== VERSION) return "malformed";
    const flags = serverHello[1] ?? 0;
    if (flags > (FLAG_SECRET_MIXED | FLAG_STATIC_MIXED)) return "malformed";
    const staticMixed = (flags & FLAG_STATIC_MIXED) !== 0;
    if (staticMixed && !this.#serverKey) return "unpinned";
    if (!staticMixed && this.#serverKey) return "not-pinned-key";
    // A server that could not mix the stored secret in (the session is gone, or its sealing key) leaves
    // it out; the resume then fails as expired, or (an impostor in the middle) as bad-proof.
    const secretMixed = (flags & FLAG_SECRET_MIXED) !== 0;
    if (secretMixed && !this.#secret) return "malformed";
    const bounds = { frames: serverHello.readUInt32BE(34), bytes: serverHello.readUInt32BE(38) };
    if (bounds.frames === 0 || bounds.bytes === 0) return "malformed";
    let theirs: KeyObject;
    try {
      theirs = publicKeyOf(serverHello.subarray(2, 34));
    } catch {
      return "malformed";
    }
    const { c2s, s2c, secret } = schedule({
      ee: diffieHellman({ privateKey: this.#own.privateKey, publicKey: theirs }),
      es: this.#serverKey
        ? diffieHellman({ privateKey: this.#own.privateKey, publicKey: this.#serverKey })
        : undefined,
      secret: secretMixed ? this.#secret : undefined,
      clientHello: this.hello,
      serverHello,
      bounds,
    });
    return {
      send: new FrameCipher(c2s, bounds),
      receive: new FrameCipher(s2c, bounds),
      secret,
      secretMixed,
    };
  }
}
