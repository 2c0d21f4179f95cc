import { type Io, parse, requiredString, STORE_HELP } from "../args.js";
import { levelName, prefix, table, time } from "../format.js";
import { usingStore } from "../store.js";

export const summary = "list a user's live sessions";

export const help = `Usage: stowage list --user USER [--store URL]

Lists the live sessions of one user, oldest first: id prefix, device, created, expires, level.
Tokens are never shown.

  --user USER    the user id (required)
${STORE_HELP}`;

/** `stowage list --user U` */
export async function run(argv: string[], io: Io): Promise<number> {
  const args = parse(argv, { user: { type: "string", short: "u" } }, { max: 0 });
  const user = requiredString(args.values.user, "--user");
  const list = await usingStore(args.store, (sessions) => sessions.listForUser(user));
  if (list.length === 0) {
    io.out(`no live sessions for user "${user}"`);
    return 0;
  }
  const rows = list.map((s) => [
    prefix(s.id),
    typeof s.attributes.device === "string" ? s.attributes.device : "-",
    time(s.createdAt),
    time(s.expiresAt),
    levelName(s.level),
  ]);
  for (const line of table(["ID", "DEVICE", "CREATED", "EXPIRES", "LEVEL"], rows)) io.out(line);
  io.out(`${list.length} live session${list.length === 1 ? "" : "s"} for user "${user}"`);
  return 0;
}
