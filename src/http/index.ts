import type { Sessions } from "../core/manager.js";
import type { Attributes } from "../core/record.js";

export {
  Carriage,
  type CarriedToken,
  type HttpSessionOptions,
  readCookie,
  type TokenSource,
} from "./carriage.js";
export { commitSession, cookieFor, LazySession, openSession } from "./core.js";
export { CSRF_HEADER, type HeaderBag, requireCsrf } from "./csrf.js";
export { type FetchSessionHandler, handleFetch, withSetCookie } from "./fetch.js";
export type { LegacySessionData, LegacyStore, MigrateOptions } from "./migrate.js";
export {
  type AttachedSession,
  attachSession,
  type NodeSessionHandler,
  type NodeSessionOptions,
  rawHeader,
  withSessions,
} from "./node.js";

/**
 * Register your manager once and every adapter types its sessions with the manager's data type:
 * `declare module "stowage/http" { interface Register { sessions: typeof sessions } }`.
 */
// biome-ignore lint/suspicious/noEmptyInterface: filled in by the application's module augmentation.
export interface Register {}

/** The attribute type of the registered manager (`Register`), or `Attributes` when none is registered. */
export type RegisteredAttributes = Register extends { sessions: Sessions<infer A> } ? A : Attributes;
