// stowage/express-session: express-session's API (req.session as a plain object, its methods, its options
// and store interface) on stowage's tokens and stores. See docs/express-session.md.
import { Cookie } from "./cookie.js";
import { session as createMiddleware } from "./middleware.js";
import { Session, Store } from "./session.js";
import { MemoryStore, StowageStore } from "./stowage-store.js";

export type { LegacyStore, MigrateOptions } from "../http/migrate.js";
export type { CookieData, CookieOptions } from "./cookie.js";
export type { SessionMiddleware, SessionOptions } from "./middleware.js";
export type {
  GetCallback,
  SessionCallback,
  SessionData,
  SessionIncomingMessage,
  StoreConstructor,
} from "./session.js";
export type { StowageStoreOptions } from "./stowage-store.js";
export { Cookie, MemoryStore, Session, Store, StowageStore };

/** The middleware factory, carrying the classes as express-session's default export does. */
const session = Object.assign(createMiddleware, { Session, Store, MemoryStore, Cookie, StowageStore });

export default session;
