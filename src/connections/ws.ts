import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { type RawData, type WebSocket, WebSocketServer } from "ws";
import type { Attributes } from "../core/record.js";
import type { Session } from "../core/session.js";
import { Carriage, type HttpSessionOptions } from "../http/carriage.js";
import type { CloseReason } from "../protocol/reasons.js";
import { closeCode } from "./connection.js";
import { type ConnectionOptions, ConnectionServer, type Peer, type Transport } from "./server.js";

export type { CloseReason } from "../protocol/reasons.js";
export { isRetryable } from "../protocol/reasons.js";
export { Connection, type ConnectionEvents } from "./connection.js";
export type {
  Authenticate,
  ConnectionIdentity,
  ConnectionOptions,
  ConnectionServerEvents,
  Peer,
  Transport,
} from "./server.js";
export { ConnectionServer } from "./server.js";

/** Options of `createConnectionServer`: the protocol's, and where the WebSocket endpoint is. */
export interface WsConnectionOptions<A extends object = Attributes>
  extends ConnectionOptions<A, IncomingMessage> {
  /** An http.Server to take WebSocket upgrades from (on `path`); or give `port`. */
  server?: Server;
  /** Path of the endpoint; upgrades to other paths are left to other handlers. @default "/live" */
  path?: string;
  /** Port of a server of its own (0: any free one), when no `server` is given. */
  port?: number;
  /** Host of a server of its own. @default "127.0.0.1" */
  host?: string;
  /** How the HTTP session's token is carried (the same options as the HTTP adapter), for `authenticate`. */
  http?: HttpSessionOptions;
}

const WS_OPTIONS = ["server", "path", "port", "host", "http"] as const;

/**
 * Resumable WebSocket connections (the `ws` package) on an existing http.Server or a port of their own.
 * Each client proves possession of its session to resume, gets every message it missed once and in
 * order, and takes over from its previous connection wherever that was; a heartbeat closes half-open
 * connections. See docs/connections.md.
 */
export class WsConnectionServer<A extends object = Attributes> extends ConnectionServer<A, IncomingMessage> {
  /** The http.Server the endpoint is on (the one given, or its own). */
  readonly server: Server;
  /** Resolves once the endpoint accepts connections. */
  readonly ready: Promise<void>;
  readonly #wss: WebSocketServer;
  readonly #path: string;
  readonly #carriage: Carriage;
  readonly #own: boolean;
  readonly #onUpgrade: (request: IncomingMessage, socket: import("node:stream").Duplex, head: Buffer) => void;
  #beat: NodeJS.Timeout;

  constructor(options: WsConnectionOptions<A>) {
    super(options, WS_OPTIONS);
    const { server, path = "/live", port, host = "127.0.0.1", http = {} } = options;
    if (typeof path !== "string" || !path.startsWith("/")) throw new TypeError("path must start with /");
    this.#path = path;
    this.#carriage = new Carriage(http);
    this.#wss = new WebSocketServer({
      noServer: true,
      maxPayload: this.settings.maxFrameBytes,
      perMessageDeflate: false,
    });
    this.#own = server === undefined;
    this.server = server ?? createServer((_req, res) => res.writeHead(426).end());
    this.#onUpgrade = (request, socket, head) => {
      if (pathOf(request.url) !== this.#path) return;
      this.#wss.handleUpgrade(request, socket, head, (ws) => this.#attach(ws, request));
    };
    this.server.on("upgrade", this.#onUpgrade);
    if (this.#own) {
      if (port === undefined) throw new TypeError("createConnectionServer needs server or port");
      this.ready = new Promise((resolve, reject) => {
        this.server.once("error", reject);
        this.server.listen(port, host, () => resolve());
      });
    } else {
      this.ready = Promise.resolve();
    }
    this.#beat = setInterval(() => this.#heartbeat(), this.settings.heartbeatMs).unref();
  }

  /** The address of a server of its own once ready (also the given server's). */
  address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  protected override async httpSession(request: IncomingMessage): Promise<Session<A> | null> {
    const secure = (request.socket as { encrypted?: boolean }).encrypted === true;
    const header = this.#carriage.header;
    const { token } = this.#carriage.read(
      request.headers.cookie,
      header === undefined ? undefined : request.headers[header],
      secure,
    );
    return token === undefined ? null : this.sessions.load(token);
  }

  #attach(ws: WebSocket, request: IncomingMessage): void {
    const transport = new SocketTransport(ws);
    SOCKETS.set(ws, transport);
    transport.peer = this.accept(transport, request);
    ws.on("message", onMessage);
    ws.on("pong", onPong);
    ws.on("error", onError);
    ws.on("close", onClose);
  }

  #heartbeat(): void {
    for (const ws of this.#wss.clients) {
      const transport = SOCKETS.get(ws);
      if (!transport) continue;
      if (!transport.alive) {
        ws.terminate();
        continue;
      }
      transport.alive = false;
      ws.ping();
    }
  }

  override async close(): Promise<void> {
    clearInterval(this.#beat);
    await super.close();
    this.server.off("upgrade", this.#onUpgrade);
    for (const ws of this.#wss.clients) ws.terminate();
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
    if (this.#own && this.server.listening) {
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      this.server.closeAllConnections();
      await closed;
    }
  }
}

/** One WebSocket as the protocol's transport, with what the heartbeat and the close need to know. */
class SocketTransport implements Transport {
  peer: Peer | undefined;
  /** Heard from since the last ping. */
  alive = true;
  #ended = false;
  constructor(readonly ws: WebSocket) {}

  write(text: string): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(text);
  }

  end(reason: CloseReason): void {
    if (this.#ended) return;
    this.#ended = true;
    this.ws.close(closeCode(reason), reason);
    // A client that never answers the close handshake is cut after a second.
    setTimeout(() => this.ws.terminate(), 1000).unref();
  }
}

// One set of listeners for every socket (ws calls them with the socket as `this`), rather than four
// closures per connection (bench: RSS per idle connection).
const SOCKETS = new WeakMap<WebSocket, SocketTransport>();

function onMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
  const transport = SOCKETS.get(this);
  if (!transport) return;
  transport.alive = true;
  transport.peer?.receive(isBinary ? "" : data.toString());
}

function onPong(this: WebSocket): void {
  const transport = SOCKETS.get(this);
  if (transport) transport.alive = true;
}

// ws reports a frame over maxPayload or a broken frame as an error, then closes with 1009 or 1002.
function onError(this: WebSocket): void {
  SOCKETS.get(this)?.peer?.receive("");
}

function onClose(this: WebSocket): void {
  SOCKETS.get(this)?.peer?.lost();
}

function pathOf(url: string | undefined): string {
  if (url === undefined) return "";
  const query = url.indexOf("?");
  return query === -1 ? url : url.slice(0, query);
}

/** Resumable WebSocket connections; see `WsConnectionServer` and docs/connections.md. */
export function createConnectionServer<A extends object = Attributes>(
  options: WsConnectionOptions<A>,
): WsConnectionServer<A> {
  return new WsConnectionServer<A>(options);
}
