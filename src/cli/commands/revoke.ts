import { Failure, type Io, parse, STORE_HELP, UsageError } from "../args.js";
import { prefix } from "../format.js";
import { resolveId } from "../resolve.js";
import { usingStore } from "../store.js";

export const summary = "end one session, or every session of a user";

export const help = `Usage: stowage revoke ID [--user USER] [--store URL]
       stowage revoke --user USER [--store URL]

Ends a session at once: its token stops working at the next request. With only --user,
ends every session of that user. ID is a whole session id, or the prefix that
\`stowage list\` shows together with --user.

  --user USER    the user whose session(s) to end
${STORE_HELP}`;

/** `stowage revoke ID` or `stowage revoke --user U` */
export async function run(argv: string[], io: Io): Promise<number> {
  const args = parse(argv, { user: { type: "string", short: "u" } }, { max: 1 });
  const typed = args.positionals[0];
  const user = typeof args.values.user === "string" ? args.values.user : undefined;
  if (user === "") throw new UsageError("--user needs a user id");
  if (typed === undefined && user === undefined)
    throw new UsageError("revoke needs a session ID or --user USER");
  return usingStore(args.store, async (sessions) => {
    if (typed === undefined) {
      const count = await sessions.endAllForUser(user!);
      io.out(`revoked ${count} session${count === 1 ? "" : "s"} of user "${user}"`);
      return 0;
    }
    const id = await resolveId(sessions, typed, user);
    if (!(await sessions.end(id))) throw new Failure(`no session with id "${typed}"`);
    io.out(`revoked session ${prefix(id)}`);
    return 0;
  });
}
