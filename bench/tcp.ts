// stowage/tcp beside node:tls (TLS 1.3) and raw node:net (issue: raw TCP connection sessions): full and
// resumed handshakes per second, bulk throughput over one connection, and messages per second in clear
// against the same framing on a bare socket. Servers run in processes of their own (bench/tcp-server.ts);
// clients run here. Run alone: node --expose-gc --import tsx bench/tcp.ts
import { type ChildProcess, execFileSync, fork } from "node:child_process";
import { generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect as dialNet, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as dialTls, type TLSSocket } from "node:tls";
import { fileURLToPath, pathToFileURL } from "node:url";
import { connectTcp } from "stowage/tcp";
// The handshake loops speak the protocol by hand (the client's reconnect backoff would be measured
// otherwise), with the package's own channel and framing code.
import { ClientHandshake, type OpenChannel } from "../src/connections/channel.js";
import { encodeFrame, encodeText, FrameDecoder } from "../src/connections/framing.js";
import { proofText } from "../src/protocol/frames.js";
import { type GroupReport, infoRow, printGroup, type Row, ratioRow } from "./report.js";

const HANDSHAKE_MS = 3000;
const LOOPS = 8;
const BULK_BYTES = 128 << 20;
const CHUNK = 16 << 10;
const MESSAGES = 100_000;

interface Child {
  child: ChildProcess;
  port: number;
  ask<T>(message: object, key: string): Promise<T>;
  cpu(): Promise<number>;
  stop(): void;
}

async function startServer(kind: string, keyFile = "", certFile = ""): Promise<Child> {
  const child = fork(fileURLToPath(new URL("./tcp-server.ts", import.meta.url)), [kind, keyFile, certFile], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const next = <T>(key: string) =>
    new Promise<T>((resolve) => {
      const on = (message: Record<string, unknown>) => {
        if (!(key in message)) return;
        child.off("message", on);
        resolve(message as T);
      };
      child.on("message", on);
    });
  const { port } = await next<{ port: number }>("port");
  return {
    child,
    port,
    ask: <T>(message: object, key: string) => {
      const answer = next<T>(key);
      child.send(message);
      return answer;
    },
    cpu: async () => {
      const answer = next<{ cpu: number }>("cpu");
      child.send({ cpu: true });
      return (await answer).cpu;
    },
    stop: () => child.kill("SIGKILL"),
  };
}

/** Runs `LOOPS` loops of `once` for HANDSHAKE_MS; handshakes per second and server CPU ms per handshake. */
async function rate(
  server: Child,
  once: (state: unknown) => Promise<unknown>,
  setup?: () => Promise<unknown>,
) {
  const states = await Promise.all(Array.from({ length: LOOPS }, () => setup?.()));
  const cpuBefore = await server.cpu();
  const end = performance.now() + HANDSHAKE_MS;
  const started = performance.now();
  let count = 0;
  await Promise.all(
    states.map(async (initial) => {
      let state = initial;
      while (performance.now() < end) {
        state = await once(state);
        count++;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const cpu = (await server.cpu()) - cpuBefore;
  return { perSecond: count / seconds, cpuPer: cpu / count };
}

// --- node:tls -------------------------------------------------------------------------------------

function tlsOnce(
  port: number,
  ca: Buffer,
  session: Buffer | undefined,
): Promise<{ session: Buffer; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const socket: TLSSocket = dialTls({
      port,
      host: "127.0.0.1",
      ca,
      servername: "localhost",
      session,
      minVersion: "TLSv1.3",
    });
    // A full handshake waits for the ticket the server sends after it; a resumed one keeps the ticket
    // it came with (the server sends no new one to a resumed session).
    let ticket: Buffer | undefined = session;
    let connected = false;
    const done = () => {
      if (!connected || !ticket) return;
      const reused = socket.isSessionReused();
      socket.destroy();
      resolve({ session: ticket, reused });
    };
    socket.once("session", (s: Buffer) => {
      ticket = s;
      done();
    });
    socket.once("secureConnect", () => {
      connected = true;
      done();
    });
    socket.once("error", reject);
  });
}

// --- stowage/tcp, by hand -------------------------------------------------------------------------

/** A TCP socket with frames and the channel: the next frame's plaintext, waited for. */
class ChannelWire {
  readonly socket: Socket;
  readonly #decoder = new FrameDecoder(1 << 24);
  readonly #bodies: Buffer[] = [];
  #wake: (() => void) | undefined;
  channel: OpenChannel | undefined;

  constructor(port: number) {
    this.socket = dialNet({ port, host: "127.0.0.1", noDelay: true });
    this.socket.on("data", (chunk: Buffer) => {
      for (const body of this.#decoder.push(chunk) ?? []) this.#bodies.push(body);
      this.#wake?.();
    });
    this.socket.on("error", () => undefined);
  }

  async body(): Promise<Buffer> {
    while (this.#bodies.length === 0) await new Promise<void>((resolve) => (this.#wake = resolve));
    return this.#bodies.shift()!;
  }

  async frame(): Promise<Record<string, unknown>> {
    const plain = this.channel!.receive.open(await this.body());
    if (!plain) throw new Error("a frame did not open");
    return JSON.parse(plain.toString()) as Record<string, unknown>;
  }

  send(value: unknown): void {
    this.socket.write(this.channel!.send.seal(Buffer.from(JSON.stringify(value))));
  }
}

interface Held {
  id: string;
  secret: Buffer;
  key: KeyObject;
}

const rawKey = (key: KeyObject) => key.export({ format: "jwk" }).x!;

/** A new session (resume undefined) or a resume of `held`: the channel handshake and the protocol's. */
async function stowageOnce(port: number, held: Held | undefined): Promise<Held> {
  const wire = new ChannelWire(port);
  const handshake = new ClientHandshake(held ? { id: held.id, secret: held.secret } : undefined, undefined);
  wire.socket.write(encodeFrame(handshake.hello));
  const keys = handshake.finish(await wire.body());
  if (typeof keys === "string") throw new Error(`channel: ${keys}`);
  wire.channel = keys;
  const hello = await wire.frame();
  const next = generateKeyPairSync("ed25519");
  if (!held) {
    wire.send({ t: "new", key: rawKey(next.publicKey) });
    const welcome = await wire.frame();
    wire.socket.destroy();
    return { id: welcome.id as string, secret: keys.secret, key: next.privateKey };
  }
  const text = proofText(hello.nonce as string, held.id, 0, rawKey(next.publicKey));
  const proofs = [sign(null, Buffer.from(text), held.key).toString("base64url")];
  wire.send({ t: "resume", id: held.id, ack: 0, key: rawKey(next.publicKey), proofs });
  const answer = await wire.frame();
  wire.socket.destroy();
  if (answer.t !== "resumed") throw new Error(`resume: ${JSON.stringify(answer)}`);
  return { ...held, key: next.privateKey };
}

// --- bulk and messages ----------------------------------------------------------------------------

/**
 * node:tls carrying bytes: raw 16 KiB chunks (`framed` false), or the same JSON messages as stowage's in
 * the same length-prefixed frames, parsed at the server (`framed` true): what an application on TLS sends.
 */
async function tlsBulk(server: Child, ca: Buffer, framed: boolean): Promise<number> {
  const socket = dialTls({ port: server.port, host: "127.0.0.1", ca, servername: "localhost" });
  await new Promise((resolve) => socket.once("secureConnect", resolve));
  await server.ask({ expectBytes: BULK_BYTES, framed }, "expecting");
  const done = server.ask<{ bytes: number; ms: number }>({}, "bytes");
  const raw = Buffer.alloc(CHUNK, "x");
  const text = "x".repeat(CHUNK);
  let s = 0;
  for (let sent = 0; sent < BULK_BYTES; sent += CHUNK) {
    const chunk = framed ? encodeText(JSON.stringify({ t: "m", s: ++s, d: text })) : raw;
    if (!socket.write(chunk)) await new Promise((resolve) => socket.once("drain", resolve));
  }
  const { bytes, ms } = await done;
  socket.destroy();
  return bytes / 1e6 / (ms / 1000);
}

async function stowageBulk(server: Child): Promise<number> {
  const conn = connectTcp({ port: server.port }, { channel: true, heartbeatMs: 600_000, maxBuffered: 1024 });
  await new Promise((resolve) => conn.on("open", resolve));
  await server.ask({ expectBytes: BULK_BYTES }, "expecting");
  const done = server.ask<{ bytes: number; ms: number }>({}, "bytes");
  const chunk = "x".repeat(CHUNK);
  for (let sent = 0; sent < BULK_BYTES; sent += CHUNK) {
    while (conn.buffered >= 512) await new Promise((resolve) => setImmediate(resolve));
    conn.send(chunk);
  }
  const { bytes, ms } = await done;
  conn.close();
  return bytes / 1e6 / (ms / 1000);
}

/** Messages per second from asking the server for MESSAGES until `all` resolves (the client counted them). */
async function messageRate(server: Child, all: Promise<void>): Promise<number> {
  await new Promise((resolve) => setTimeout(resolve, 50));
  const started = performance.now();
  server.child.send({ send: MESSAGES });
  await all;
  return MESSAGES / ((performance.now() - started) / 1000);
}

async function netMessages(server: Child): Promise<number> {
  const socket = dialNet({ port: server.port, host: "127.0.0.1", noDelay: true });
  await new Promise((resolve) => socket.once("connect", resolve));
  const decoder = new FrameDecoder(1 << 20);
  let count = 0;
  const all = new Promise<void>((resolve) =>
    socket.on("data", (chunk: Buffer) => {
      for (const body of decoder.push(chunk) ?? []) {
        JSON.parse(body.toString());
        if (++count === MESSAGES) resolve();
      }
    }),
  );
  const rate = await messageRate(server, all);
  socket.destroy();
  return rate;
}

async function stowageMessages(server: Child): Promise<number> {
  const conn = connectTcp({ port: server.port }, { heartbeatMs: 600_000 });
  await new Promise((resolve) => conn.on("open", resolve));
  let count = 0;
  const all = new Promise<void>((resolve) =>
    conn.on("message", () => {
      if (++count === MESSAGES) resolve();
    }),
  );
  const rate = await messageRate(server, all);
  conn.close();
  return rate;
}

export async function run(): Promise<GroupReport> {
  const dir = mkdtempSync(join(tmpdir(), "stowage-bench-tls-"));
  const keyFile = join(dir, "key.pem");
  const certFile = join(dir, "cert.pem");
  // A P-256 certificate, as a TLS deployment would have; made for the run, removed after it.
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      keyFile,
      "-out",
      certFile,
      "-days",
      "1",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=DNS:localhost",
    ],
    { stdio: "ignore" },
  );
  const ca = readFileSync(certFile);
  const rows: Row[] = [];
  const notes: string[] = [];
  try {
    const tls = await startServer("tls", keyFile, certFile);
    const channel = await startServer("channel");
    let reused = 0;
    let tried = 0;
    const tlsFull = await rate(tls, async () => tlsOnce(tls.port, ca, undefined));
    const tlsResumed = await rate(
      tls,
      async (state) => {
        const answer = await tlsOnce(tls.port, ca, state as Buffer);
        tried++;
        if (answer.reused) reused++;
        return answer.session;
      },
      async () => (await tlsOnce(tls.port, ca, undefined)).session,
    );
    const ourFull = await rate(channel, async () => stowageOnce(channel.port, undefined));
    const ourResumed = await rate(
      channel,
      async (state) => stowageOnce(channel.port, state as Held),
      () => stowageOnce(channel.port, undefined),
    );
    const tlsMbps = await tlsBulk(tls, ca, false);
    const tlsFramedMbps = await tlsBulk(tls, ca, true);
    const ourMbps = await stowageBulk(channel);
    tls.stop();
    channel.stop();
    const net = await startServer("net");
    const plain = await startServer("plain");
    const netRate = await netMessages(net);
    const plainRate = await stowageMessages(plain);
    net.stop();
    plain.stop();
    rows.push(
      ratioRow(
        "full handshakes/s: a new session on the channel vs a full TLS 1.3 handshake (P-256 certificate)",
        { label: "stowage", perSecond: ourFull.perSecond },
        { label: "node:tls", perSecond: tlsFull.perSecond },
        undefined,
        "/s",
      ),
      infoRow(
        "full handshakes: server CPU per handshake",
        `${ourFull.cpuPer.toFixed(3)} ms`,
        `node:tls: ${tlsFull.cpuPer.toFixed(3)} ms`,
      ),
      ratioRow(
        "resumed handshakes/s: stowage resume (fresh X25519 + stored secret + proof) vs TLS 1.3 ticket resumption",
        { label: "stowage", perSecond: ourResumed.perSecond },
        { label: "node:tls", perSecond: tlsResumed.perSecond },
        1,
        "/s",
      ),
      infoRow(
        "resumed handshakes: server CPU per handshake",
        `${ourResumed.cpuPer.toFixed(3)} ms`,
        `node:tls: ${tlsResumed.cpuPer.toFixed(3)} ms (${((100 * reused) / Math.max(tried, 1)).toFixed(0)}% resumed)`,
      ),
      ratioRow(
        "bulk client → server over one connection, 16 KiB JSON messages, 128 MiB: encrypted channel vs node:tls carrying the same messages",
        { label: "stowage", perSecond: ourMbps },
        { label: "node:tls", perSecond: tlsFramedMbps },
        0.7,
        "MB/s",
      ),
      ratioRow(
        "bulk, the same, vs node:tls carrying raw 16 KiB chunks (no messages)",
        { label: "stowage", perSecond: ourMbps },
        { label: "node:tls raw", perSecond: tlsMbps },
        undefined,
        "MB/s",
      ),
      ratioRow(
        "server → client messages/s over one connection, in clear: stowage/tcp vs bare node:net with the same framing",
        { label: "stowage", perSecond: plainRate },
        { label: "node:net", perSecond: netRate },
        0.6,
        "msg/s",
      ),
    );
    notes.push(
      `Handshakes: the server in its own process (MemoryStore, no static key), ${LOOPS} client loops in the bench process for ${HANDSHAKE_MS / 1000} s each, one handshake after another, each connection closed as soon as it is up. node:tls: TLS 1.3 with its defaults (X25519, AES-256-GCM), a P-256 certificate verified by the client; resumption with the last ticket the server sent (psk_dhe_ke). stowage: the channel handshake (a fresh X25519 exchange each way) and the protocol's — a new session is inserted in the store; a resume verifies an Ed25519 proof, mixes the stored secret (opened with the key ring) into the keys and rotates the credential with one conditional write. The client makes its next Ed25519 key pair inside each handshake here (the real client makes it while idle).`,
      "Bulk: one connection, the client sends 16 KiB strings as messages: stowage's are sequenced, sealed one frame each, acknowledged and kept by the client until acknowledged (its send buffer is the backpressure); node:tls carries the same `{ t, s, d }` JSON in the same length-prefixed frames, which its server cuts and parses (the goal row), or raw 16 KiB chunks nobody parses (the row below it). MB/s of payload from the server's first byte to its last.",
      `Messages: one connection, ${MESSAGES.toLocaleString("en")} JSON messages { n } from server to client, in batches of 256 per turn; stowage's go through the session's outbox (MemoryStore) first; node:net writes the same length-prefixed frames straight to the socket and the client parses each one.`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return { group: "tcp", title: "stowage/tcp beside node:tls and node:net", rows, notes };
}

if (import.meta.url === pathToFileURL(process.argv[1]!).href) {
  printGroup(await run());
  process.exit(0);
}
