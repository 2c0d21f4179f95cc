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
