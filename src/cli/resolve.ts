import type { Sessions } from "../core/manager.js";
import { ID_LENGTH } from "../core/tokens.js";
import { Failure, UsageError } from "./args.js";

const ID_CHARS = /^[A-Za-z0-9_-]+$/;

/**
 * A full session id from what the user typed: a whole id as is, or the id prefix `list` shows, matched
 * against the live sessions of `user` (prefixes cannot be looked up in a store without a user).
 */
export async function resolveId(
  sessions: Sessions,
  typed: string,
  user: string | undefined,
): Promise<string> {
  if (!ID_CHARS.test(typed)) throw new UsageError(`"${typed}" is not a session id`);
  if (typed.length === ID_LENGTH) return typed;
  if (typed.length > ID_LENGTH) throw new UsageError(`a session id has ${ID_LENGTH} characters`);
  if (user === undefined) {
    throw new UsageError(`"${typed}" is an id prefix: give the whole id, or --user USER to match the prefix`);
  }
  const matches = (await sessions.listForUser(user)).filter((s) => s.id.startsWith(typed));
  if (matches.length === 0) throw new Failure(`no live session of user "${user}" starts with "${typed}"`);
  if (matches.length > 1)
    throw new UsageError(`"${typed}" matches ${matches.length} sessions; type more of the id`);
  return matches[0]!.id;
}
