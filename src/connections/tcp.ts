// stowage/tcp: resumable connections over raw TCP, server and Node client, with the optional encrypted
// channel. The protocol core is the one under stowage/ws.
export type { ClientConnection, ClientEvents, ClientState, Json } from "../client/index.js";
export type { CloseReason } from "../protocol/reasons.js";
export { isRetryable } from "../protocol/reasons.js";
export { type ChannelKeyPair, generateChannelKey, type RekeyBounds } from "./channel.js";
export { Connection, type ConnectionEvents } from "./connection.js";
export type {
  Authenticate,
  ConnectionIdentity,
  ConnectionOptions,
  ConnectionServerEvents,
} from "./server.js";
export { connectTcp, type TcpConnectOptions, type TcpTarget } from "./tcp-client.js";
export {
  createTcpConnectionServer,
  type TcpChannelOptions,
  type TcpConnectionOptions,
  TcpConnectionServer,
  type TcpRequest,
} from "./tcp-server.js";
