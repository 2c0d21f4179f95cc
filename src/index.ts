import { Sessions, type SessionsOptions } from "./core/manager.js";
import type { Attributes } from "./core/record.js";
import { MemoryStore } from "./stores/memory/index.js";

export type { Clock } from "./core/clock.js";
export { isStowageError, StowageError, type StowageErrorCode } from "./core/errors.js";
export type { SessionEvents } from "./core/events.js";
export { KeyRing, type SealingKey } from "./core/keyring.js";
export type {
  CreateInit,
  SessionCommitOptions,
  SessionInfo,
  SessionStats,
  SessionsOptions,
} from "./core/manager.js";
export { Sessions } from "./core/manager.js";
export {
  type Attributes,
  type ChannelState,
  type ConnectionRef,
  type JsonValue,
  type LoginType,
  type MetaPatch,
  PermissionLevel,
  type SessionRecord,
} from "./core/record.js";
export type {
  AcquireOptions,
  ChannelKeys,
  LoginOptions,
  RegenerateReason,
  SessionLease,
} from "./core/session.js";
export { Session } from "./core/session.js";
export type * from "./core/store.js";
export { ID_LENGTH, SECRET_LENGTH, TOKEN_LENGTH } from "./core/tokens.js";
export { MemoryStore, type MemoryStoreOptions } from "./stores/memory/index.js";
export { type OpenStoreOptions, openStore } from "./stores/open.js";

/**
 * Creates a session manager.
 *
 * @example
 * const sessions = createSessions<{ cart: string[] }>({ store: new SqliteStore({ path: "sessions.db" }) });
 * const session = sessions.create();
 * session.set("cart", ["book"]);
 * await session.save();
 */
export function createSessions<A extends object = Attributes>(options: SessionsOptions = {}): Sessions<A> {
  const { store, ...rest } = options ?? {};
  return new Sessions<A>(store ?? new MemoryStore(), rest);
}
