import { randomBytes } from "node:crypto";
import { isStowageError, StowageError } from "../core/errors.js";
import { Emitter } from "../core/events.js";
import { serializeJson } from "../core/json.js";
import type { Sessions } from "../core/manager.js";
import { OptionChecker } from "../core/options.js";
import {
  type Attributes,
  type ConnectionRef,
  expiryOf,
  type JsonValue,
  type SessionRecord,
} from "../core/record.js";
import type { Session } from "../core/session.js";
import type { OutboxLimits, StoredRecord, StoreEvent } from "../core/store.js";
import { newId, verifierOf } from "../core/tokens.js";
import {
  type ClientFrame,
  type Gap,
  type Json,
  PROTOCOL_VERSION,
  parseClientFrame,
  proofText,
} from "../protocol/frames.js";
import type { CloseReason } from "../protocol/reasons.js";
import { Connection, type ConnectionHost, messageText } from "./connection.js";
import { newConnectionId, newNonce, verifyProof } from "./credential.js";

/** Who a new connection belongs to, as `authenticate` says. */
export interface ConnectionIdentity<A extends object = Attributes> {
  /** The signed-in user, if any (`endAllForUser` then ends this connection too). */
  userId?: string;
  /** Permission level, 0 to 255. @default 0, or the HTTP session's level */
  level?: number;
  /** Attributes the connection session starts with. */
  attributes?: Partial<A>;
}

/**
 * Decides who a new connection is: the request it came with (the WebSocket upgrade request, or the TCP
 * socket), the HTTP session its cookie names (null when there is none), and the `auth` value the client
 * sent with its `new` frame (the client's `auth` option). Returning null refuses the connection (`refused`).
 */
export type Authenticate<A extends object, R> = (
  request: R,
  httpSession: Session<A> | null,
  auth: Json | undefined,
) => ConnectionIdentity<A> | null | Promise<ConnectionIdentity<A> | null>;

/** Options every connection server takes (stowage/ws adds its transport's). */
export interface ConnectionOptions<A extends object, R> {
  /** The session manager; its store keeps connection sessions and their outboxes. */
  sessions: Sessions<A>;
  /** Who a new connection is; without it every new connection is anonymous. */
  authenticate?: Authenticate<A, R>;
  /** How long a dropped connection's session waits for its client to resume, in ms. @default 120000 */
  resumeWindowMs?: number;
  /** Interval of the heartbeat that finds half-open connections, in ms. @default 25000 */
  heartbeatMs?: number;
  /** Bounds of each session's outbox; past them a resume reports a gap. @default { maxMessages: 1000, maxBytes: 1 MiB } */
  replay?: Partial<OutboxLimits>;
  /** Largest frame accepted from a client, in bytes; a larger one closes it with `malformed`. @default 1 MiB */
  maxFrameBytes?: number;
  /** Most connection sessions one user may hold (connected or waiting to resume); more are `limit`. @default no bound */
  maxConnectionsPerUser?: number;
  /** How long a client has to say `new` or `resume` after the hello, in ms. @default 10000 */
  handshakeTimeoutMs?: number;
  /** This process's name in `ConnectionRef.node`. @default a random one */
  node?: string;
}

/** Events of a connection server. */
export interface ConnectionServerEvents<A extends object> {
  /** A connection is open: new, or resumed. */
  connection: Connection<A>;
  /** A handshake was refused; `id` when it named a session, `detail` when the reason alone does not say why. */
  rejected: { reason: CloseReason; id?: string; detail?: string };
  /** A background failure (the store's event subscription, say). */
  error: Error;
}

/** The two ends a transport gives the protocol: write a frame, end the connection with a reason. */
export interface Transport {
  /** Writes one frame's text. */
  write(text: string): void;
  /** Ends the transport, telling the client `reason`. */
  end(reason: CloseReason): void;
  /** What an encrypted transport (stowage/tcp's channel) tells the protocol; undefined in clear. */
  readonly channel?: ChannelBinding;
}

/**
 * An encrypted transport's channel, as the protocol needs it: a new session keeps `secret` (sealed with
 * the key ring) so its resumes can mix it in; a session that has one resumes only on a channel whose
 * keys were mixed with it.
 */
export interface ChannelBinding {
  /** The cipher suite, as the record names it. */
  readonly algorithm: string;
  /** Derived in this channel's handshake: what a session without a stored secret keeps. */
  readonly secret: Uint8Array;
  /**
   * The session whose stored secret this channel mixed in, with that secret (to seal it again) and the
   * record it was read from, which the resume checks first instead of reading it again.
   */
  readonly resumed?: { readonly id: string; readonly secret: Uint8Array; readonly record: StoredRecord };
  /** The session the client named whose stored secret could not be opened: the answer its resume gets, and why. */
  readonly unopened?: { readonly id: string; readonly reason: CloseReason; readonly detail: string };
}

/** A session's stored channel secret, opened, with the record it is in: or why it cannot be. */
export type StoredSecret =
  | { readonly secret: Buffer; readonly record: StoredRecord }
  | { readonly missing: string }
  | undefined;

/** The protocol's side of one transport: the transport calls these as frames come and when it ends. */
export interface Peer {
  /** One frame's text from the client. */
  receive(text: string): void;
  /** The transport is gone (the network, or after `end`). */
  lost(): void;
}

/** @internal The option names every connection server takes. */
export const CONNECTION_OPTIONS = [
  "sessions",
  "authenticate",
  "resumeWindowMs",
  "heartbeatMs",
  "replay",
  "maxFrameBytes",
  "maxConnectionsPerUser",
  "handshakeTimeoutMs",
  "node",
] as const;

// Longest a replay or a pump reads from the outbox in one store call.
const READ_PAGE = 500;

/** Why a handshake was refused, with a detail where the reason alone does not say it. */
type Refusal = CloseReason | { reason: CloseReason; detail: string };

/** The associated data a channel secret is sealed under (as `Session.setChannel` seals). */
function channelContext(algorithm: string): string {
  return `channel:${algorithm}`;
}

/**
 * The resume protocol over any transport (docs/resume-protocol.md): the hello and its nonce, a new
 * connection session or the resume of one (proof checked before anything changes, then a conditional
 * write that exactly one of two racing resumes wins), the takeover of the previous connection wherever it
 * is, and the replay of what the client missed. stowage/ws puts WebSocket under it.
 */
export class ConnectionServer<A extends object = Attributes, R = unknown> extends Emitter<
  ConnectionServerEvents<A>
> {
  /** The session manager. */
  readonly sessions: Sessions<A>;
  /** This process's name in connection records. */
  readonly node: string;
  /** Resume window, heartbeat interval and bounds, as given or defaulted. */
  readonly settings: {
    readonly resumeWindowMs: number;
    readonly heartbeatMs: number;
    readonly replay: OutboxLimits;
    readonly maxFrameBytes: number;
    readonly maxConnectionsPerUser: number;
    readonly handshakeTimeoutMs: number;
  };
  readonly #authenticate: Authenticate<A, R> | undefined;
  readonly #live = new Map<string, Connection<A>>();
  readonly #pending = new Set<Handshake<A, R>>();
  readonly #host: ConnectionHost<A>;
  readonly #origin = randomBytes(8).toString("base64url");
  #unsubscribe: Promise<() => Promise<void>> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: ConnectionOptions<A, R>, extra: readonly string[] = []) {
    super();
    const check = new OptionChecker("createConnectionServer", options, [...CONNECTION_OPTIONS, ...extra]);
    const sessions = check.raw("sessions") as Sessions<A> | undefined;
    if (typeof sessions?.connectionSession !== "function") {
      throw check.error("sessions must be a session manager (createSessions)");
    }
    this.sessions = sessions;
    const authenticate = check.raw("authenticate");
    if (authenticate !== undefined && typeof authenticate !== "function") {
      throw check.error("authenticate must be a function");
    }
    this.#authenticate = authenticate as Authenticate<A, R> | undefined;
    const replay = (check.raw("replay") ?? {}) as Partial<OutboxLimits>;
    const replayCheck = new OptionChecker("createConnectionServer replay", replay, [
      "maxMessages",
      "maxBytes",
    ]);
    this.settings = {
      resumeWindowMs: check.ms("resumeWindowMs", 120_000),
      heartbeatMs: check.ms("heartbeatMs", 25_000),
      replay: {
        maxMessages: replayCheck.count("maxMessages", 1000),
        maxBytes: replayCheck.bytes("maxBytes", 1 << 20),
      },
      maxFrameBytes: check.bytes("maxFrameBytes", 1 << 20),
      maxConnectionsPerUser: check.count("maxConnectionsPerUser", Number.POSITIVE_INFINITY, {
        infinite: true,
      }),
      handshakeTimeoutMs: check.ms("handshakeTimeoutMs", 10_000),
    };
    this.node = check.text("node", randomBytes(6).toString("base64url"));
    const store = sessions.store;
    const limits = this.settings.replay;
    this.#host = {
      // A message frame wraps the value in about 40 bytes; both bounds must let one through.
      maxMessageBytes: Math.min(limits.maxBytes, this.settings.maxFrameBytes - 64),
      append: (id, texts) => store.outboxAppend(id, texts, limits),
      read: async (id, after) => (await store.outboxRead(id, after, READ_PAGE)).messages,
      trim: (id, through) => store.outboxTrim(id, through),
      commit: (session) => this.sessions.commit(session),
      sessionOf: (record, generation) =>
        this.sessions.connectionSession(record, generation, this.settings.resumeWindowMs),
      touch: (id, idleExpiresAt) => store.touch(id, idleExpiresAt),
      resumeWindowMs: this.settings.resumeWindowMs,
      closed: (connection) => {
        if (this.#live.get(connection.id) === connection) this.#live.delete(connection.id);
      },
    };
    this.#subscribe();
    this.#timer = setInterval(() => this.#tick(), this.settings.heartbeatMs).unref();
  }

  /** Handshakes under way: transports that have had the hello and no answer yet. */
  get handshakes(): number {
    return this.#pending.size;
  }

  /** Connections open in this process, by connection session id. */
  get connections(): ReadonlyMap<string, Connection<A>> {
    return this.#live;
  }

  /**
   * Starts the protocol on a new transport: sends the hello and waits for `new` or `resume`. The
   * transport passes each frame it receives to the returned peer, and tells it when it is gone.
   */
  accept(transport: Transport, request: R): Peer {
    if (this.#closed) {
      transport.end("closed");
      return { receive: () => undefined, lost: () => undefined };
    }
    const peer = new Handshake<A, R>(this, transport, request, this.settings.handshakeTimeoutMs);
    this.#pending.add(peer);
    return peer;
  }

  /** @internal The handshake's answer, by the frame that asked: a connection, or why not. */
  open(
    frame: Extract<ClientFrame, { t: "new" } | { t: "resume" }>,
    nonce: string,
    transport: Transport,
    request: R,
    gone: () => boolean,
  ): Promise<Connection<A> | Refusal> {
    if (frame.t === "new") return this.#open(frame, transport, request);
    return this.#resume(frame, nonce, transport, gone);
  }

  /**
   * The stored channel secret of session `id`, opened with the manager's key ring, for a transport whose
   * channel handshake names it: undefined when there is no such session or it has no secret (the resume
   * then answers as it would anyway), `missing` when its sealing key is gone or it does not open.
   */
  protected async storedSecret(id: string): Promise<StoredSecret> {
    const record = await this.sessions.store.get(id);
    const channel = record?.connection ? record.channel : undefined;
    if (!channel) return undefined;
    const ring = this.sessions.keys;
    if (!ring || ring.keyOf(channel.sealedSecret) === "missing") {
      return { missing: "its channel secret was sealed with a key the key ring no longer has" };
    }
    const secret = ring.unseal(channel.sealedSecret, channelContext(channel.algorithm));
    return secret
      ? { secret, record: record! }
      : { missing: "its sealed channel secret does not open (altered in the store)" };
  }

  /** @internal A handshake is over: connected, refused, failed, or (undefined) its transport went first. */
  settled(
    peer: Handshake<A, R>,
    outcome: Connection<A> | ConnectionServerEvents<A>["rejected"] | Error | undefined,
  ): void {
    this.#pending.delete(peer);
    if (outcome === undefined) return;
    if (outcome instanceof Connection) this.emit("connection", outcome);
    else if (outcome instanceof Error) this.emit("error", outcome);
    else this.emit("rejected", outcome);
  }

  /**
   * Sends a JSON value to a connection session wherever it is: through its connection when this process
   * holds it, otherwise into its outbox, with a notice to the process that holds it (or for the resume
   * that comes). Resolves the message's sequence number; SESSION_ENDED when there is no such session.
   */
  async send(sessionId: string, value: JsonValue): Promise<number> {
    const local = this.#live.get(sessionId);
    if (local && local.closeReason === undefined) return local.send(value);
    const text = messageText(value, this.#host.maxMessageBytes);
    const seq = await this.sessions.store.outboxAppend(sessionId, [text], this.settings.replay);
    await this.sessions.store.publish({
      type: "outbox",
      id: sessionId,
      at: Date.now(),
      origin: this.#origin,
    });
    return seq;
  }

  /** Closes every connection with `closed` (clients resume elsewhere or later) and stops listening. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    for (const peer of [...this.#pending]) peer.abort();
    for (const connection of [...this.#live.values()]) connection.terminate("closed");
    const unsubscribe = this.#unsubscribe;
    this.#unsubscribe = undefined;
    if (unsubscribe) await (await unsubscribe.catch(() => async () => undefined))();
  }

  /** A new connection session, for whoever `authenticate` says the client is. */
  async #open(
    frame: Extract<ClientFrame, { t: "new" }>,
    transport: Transport,
    request: R,
  ): Promise<Connection<A> | CloseReason> {
    const store = this.sessions.store;
    let identity: ConnectionIdentity<A> | null = {};
    let http: Session<A> | null = null;
    try {
      http = await this.httpSession(request);
      if (this.#authenticate) identity = await this.#authenticate(request, http, frame.auth);
    } catch (error) {
      if (isStowageError(error, "STORE_UNAVAILABLE")) return "unavailable";
      throw error;
    }
    if (identity === null || typeof identity !== "object") return "refused";
    const userId = identity.userId;
    const level = identity.level ?? http?.level ?? 0;
    if (userId !== undefined && (typeof userId !== "string" || userId.length === 0)) return "refused";
    if (!Number.isInteger(level) || level < 0 || level > 255) return "refused";
    const attributes = JSON.parse(serializeJson(identity.attributes ?? {}, "attributes")) as Attributes;
    const now = this.sessions.now();
    const ref: ConnectionRef = {
      id: newConnectionId(),
      node: this.node,
      generation: 1,
      received: 0,
      key: frame.key,
    };
    const record: SessionRecord = {
      id: newId(),
      // No token names a connection session; this verifier is of a secret nobody ever sees.
      verifier: verifierOf(randomBytes(32).toString("base64url")),
      version: 1,
      createdAt: now,
      rotatedAt: now,
      expiresAt: now + this.sessions.ttl,
      idleExpiresAt: now + this.settings.resumeWindowMs,
      level,
      loginType: userId === undefined ? "unspecified" : (http?.lastLoginType ?? "unspecified"),
      attributes,
      connection: ref,
    };
    const channel = transport.channel;
    if (channel) record.channel = this.#sealed(channel.algorithm, channel.secret);
    if (userId !== undefined) {
      record.userId = userId;
      if (http?.lastLoginAt !== undefined) record.lastLoginAt = http.lastLoginAt;
    }
    try {
      if (userId !== undefined && Number.isFinite(this.settings.maxConnectionsPerUser)) {
        const held = (await store.listByUser(userId)).filter((r) => r.connection && expiryOf(r) > now);
        if (held.length >= this.settings.maxConnectionsPerUser) return "limit";
      }
      await store.insert(record);
    } catch (error) {
      if (isStowageError(error, "STORE_UNAVAILABLE")) return "unavailable";
      throw error;
    }
    const connection = this.#connect(transport, record, ref, { resumed: false, delivered: 0 });
    transport.write(`{"t":"welcome","id":"${record.id}"}`);
    return connection;
  }

  /**
   * A resume: the proof is checked against the stored public key before anything is written; then one
   * conditional write rotates the key, bumps the generation and names this connection the holder. Of two
   * resumes racing with one credential, the second finds the key changed and its proof no longer good.
   */
  async #resume(
    frame: Extract<ClientFrame, { t: "resume" }>,
    nonce: string,
    transport: Transport,
    gone: () => boolean,
  ): Promise<Connection<A> | Refusal> {
    const store = this.sessions.store;
    const text = proofText(nonce, frame.id, frame.ack, frame.key);
    const binding = transport.channel;
    let record: SessionRecord | undefined;
    let ref: ConnectionRef | undefined;
    try {
      // The channel's lookup read the record a moment ago: the first attempt checks that one. If it has
      // changed since, the conditional write below fails and the next attempt reads it again.
      let known = binding?.resumed?.id === frame.id ? binding.resumed.record : undefined;
      for (let attempt = 0; attempt < 16 && ref === undefined; attempt++) {
        const found = known ?? (await store.get(frame.id));
        known = undefined;
        const held = found?.connection;
        if (!found || found.via !== undefined || !held) return "expired";
        if (!frame.proofs.some((proof) => verifyProof(held.key, text, proof))) return "bad-proof";
        const now = this.sessions.now();
        if (expiryOf(found) <= now) return "expired";
        // A session with a channel secret resumes only on a channel its secret went into.
        let channel: SessionRecord["channel"];
        if (found.channel) {
          const unopened = binding?.unopened;
          if (unopened?.id === frame.id) return { reason: unopened.reason, detail: unopened.detail };
          if (binding?.resumed?.id !== frame.id) return "bad-proof";
          if (this.sessions.keys?.keyOf(found.channel.sealedSecret) !== "current") {
            channel = this.#sealed(found.channel.algorithm, binding.resumed.secret);
          }
        } else if (binding) {
          channel = this.#sealed(binding.algorithm, binding.secret);
        }
        if (gone()) return "closed";
        const next: ConnectionRef = {
          id: newConnectionId(),
          node: this.node,
          generation: held.generation + 1,
          received: held.received,
          key: frame.key,
        };
        const idleExpiresAt = now + this.settings.resumeWindowMs;
        try {
          const meta = channel
            ? { connection: next, idleExpiresAt, channel }
            : { connection: next, idleExpiresAt };
          const version = await store.commit(frame.id, { meta }, { ifVersion: found.version });
          record = { ...found, ...meta, version };
          ref = next;
        } catch (error) {
          if (isStowageError(error, "SESSION_ENDED")) return "expired";
          if (!isStowageError(error, "VERSION_CONFLICT")) throw error;
        }
      }
      if (!record || !ref) return "unavailable";
    } catch (error) {
      if (isStowageError(error, "STORE_UNAVAILABLE")) return "unavailable";
      throw error;
    }
    // The previous holder closes with `replaced`: here at once, elsewhere through the store's events.
    this.#live.get(frame.id)?.terminate("replaced");
    store
      .publish({ type: "replaced", id: frame.id, connection: ref, at: Date.now(), origin: this.#origin })
      .catch((error: unknown) =>
        this.emit("error", error instanceof Error ? error : new Error(String(error))),
      );
    let page: Awaited<ReturnType<typeof store.outboxRead>>;
    try {
      page = await store.outboxRead(frame.id, frame.ack, READ_PAGE);
    } catch (error) {
      // The key has rotated: the client must hear so (resumed) before it is told to come back later.
      transport.write(`{"t":"resumed","id":"${frame.id}","ack":${ref.received}}`);
      if (isStowageError(error, "STORE_UNAVAILABLE")) return "unavailable";
      throw error;
    }
    if (frame.ack > page.last) return "malformed";
    const gap: Gap | undefined =
      page.droppedThrough > frame.ack ? { after: frame.ack, through: page.droppedThrough } : undefined;
    const connection = this.#connect(transport, record, ref, {
      resumed: true,
      delivered: frame.ack,
      ...(gap ? { gap } : {}),
    });
    transport.write(
      `{"t":"resumed","id":"${frame.id}","ack":${ref.received}${gap ? `,"gap":${JSON.stringify(gap)}` : ""}}`,
    );
    // What the client has is acknowledged by its resume; the rest is replayed, then whatever comes next.
    if (frame.ack > 0) store.outboxTrim(frame.id, frame.ack).catch(() => undefined);
    void connection.pump();
    return connection;
  }

  /** A channel secret sealed with the key ring's current key, bound to its algorithm. */
  #sealed(algorithm: string, secret: Uint8Array): NonNullable<SessionRecord["channel"]> {
    const ring = this.sessions.keys;
    if (!ring)
      throw new StowageError("CONFIG_INVALID", "an encrypted channel needs the manager's keys option");
    return { algorithm, sealedSecret: ring.seal(secret, channelContext(algorithm)) };
  }

  #connect(
    transport: Transport,
    record: SessionRecord,
    ref: ConnectionRef,
    init: ConstructorParameters<typeof Connection<A>>[4],
  ): Connection<A> {
    const connection = new Connection<A>(transport, this.#host, record, ref, init);
    this.#live.set(record.id, connection);
    return connection;
  }

  /**
   * The HTTP session the request's token names, for `authenticate`; null when there is none. A transport
   * that carries HTTP requests (stowage/ws) reads the cookie here.
   */
  protected httpSession(_request: R): Promise<Session<A> | null> {
    return Promise.resolve(null);
  }

  /** The heartbeat's other half: keeps live sessions from idling out, closes those that expired. */
  #tick(): void {
    const now = this.sessions.now();
    for (const connection of [...this.#live.values()]) connection.heartbeat(now);
  }

  #subscribe(): void {
    this.#unsubscribe = this.sessions.store.subscribe((event) => this.#heard(event));
    this.#unsubscribe.catch((error: unknown) => {
      this.#unsubscribe = undefined;
      this.emit("error", error instanceof Error ? error : new Error(String(error)));
    });
  }

  #heard(event: StoreEvent): void {
    const connection = this.#live.get(event.id);
    if (!connection) return;
    switch (event.type) {
      case "ended":
      case "revoked":
        connection.terminate("revoked");
        break;
      case "replaced":
        if (event.connection && event.connection.generation > connection.ref.generation) {
          connection.terminate("replaced");
        }
        break;
      case "outbox":
        void connection.pump();
        break;
    }
  }
}

/**
 * One transport's side of the protocol: the hello, then `new` or `resume`, then the connection it made.
 * What only the handshake needs (the request, the nonce, the timer) is let go once it is over, so an
 * open connection holds no more than its transport and its `Connection`.
 */
class Handshake<A extends object, R> implements Peer {
  #server: ConnectionServer<A, R>;
  #transport: Transport;
  #request: R | undefined;
  #nonce: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #connection: Connection<A> | undefined;
  #gone = false;
  /** A frame came before the handshake's answer: the client broke the protocol. */
  #early = false;

  constructor(server: ConnectionServer<A, R>, transport: Transport, request: R, timeoutMs: number) {
    this.#server = server;
    this.#transport = transport;
    this.#request = request;
    const nonce = newNonce();
    this.#nonce = nonce;
    this.#timer = setTimeout(() => this.#reject("malformed"), timeoutMs).unref();
    transport.write(`{"t":"hello","v":${PROTOCOL_VERSION},"nonce":"${nonce}"}`);
  }

  receive(text: string): void {
    const connection = this.#connection;
    if (connection) {
      const frame = parseClientFrame(text);
      if (frame === undefined || frame.t === "new" || frame.t === "resume") connection.terminate("malformed");
      else connection.receive(frame);
      return;
    }
    const nonce = this.#nonce;
    const request = this.#request;
    if (nonce === undefined || request === undefined) {
      this.#early = true;
      return;
    }
    this.#done();
    const frame = parseClientFrame(text);
    if (frame?.t !== "new" && frame?.t !== "resume") {
      this.#reject("malformed");
      return;
    }
    this.#server
      .open(frame, nonce, this.#transport, request, () => this.#gone)
      .then(
        (opened) => {
          const id = frame.t === "resume" ? frame.id : undefined;
          if (typeof opened === "string") return this.#reject(opened, id);
          if (!(opened instanceof Connection)) return this.#reject(opened.reason, id, opened.detail);
          this.#connection = opened;
          this.#server.settled(this, this.#gone ? undefined : opened);
          if (this.#gone) opened.terminate("lost");
          else if (this.#early) opened.terminate("malformed");
        },
        (error: unknown) => {
          this.#server.settled(this, error instanceof Error ? error : new Error(String(error)));
          this.#reject("unavailable");
        },
      );
  }

  lost(): void {
    this.#gone = true;
    if (this.#nonce !== undefined) this.#reject("closed");
    this.#connection?.terminate("lost");
  }

  /** The server is closing while this handshake is under way. */
  abort(): void {
    this.#reject("closed");
  }

  #done(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#nonce = undefined;
    this.#request = undefined;
  }

  #reject(reason: CloseReason, id?: string, detail?: string): void {
    this.#done();
    this.#server.settled(this, {
      reason,
      ...(id === undefined ? {} : { id }),
      ...(detail === undefined ? {} : { detail }),
    });
    if (this.#gone) return;
    this.#transport.write(`{"t":"rejected","reason":"${reason}"}`);
    this.#transport.end(reason);
  }
}
