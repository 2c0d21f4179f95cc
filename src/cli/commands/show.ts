import { expiryOf } from "../../core/record.js";
import { CSRF_KEY } from "../../core/session.js";
import { Failure, type Io, parse, STORE_HELP, UsageError } from "../args.js";
import { facts, levelName, time } from "../format.js";
import { sessionJson } from "../json.js";
import { resolveId } from "../resolve.js";
import { usingStore } from "../store.js";

export const summary = "show one session";

export const help = `Usage: stowage show ID [--user USER] [--json] [--store URL]

Shows one session: user, level, times, attributes. ID is a whole session id, or the
id prefix that \`stowage list\` shows together with --user. Secrets are never shown.

  --user USER    match ID as a prefix among this user's sessions
  --json         one JSON object: the schema of list --json and a few more fields (docs/cli.md)
${STORE_HELP}`;

/** `stowage show ID` */
export async function run(argv: string[], io: Io): Promise<number> {
  const args = parse(argv, { user: { type: "string", short: "u" }, json: { type: "boolean" } }, { max: 1 });
  const typed = args.positionals[0];
  if (typed === undefined) throw new UsageError("show needs a session ID");
  const user = typeof args.values.user === "string" ? args.values.user : undefined;
  const record = await usingStore(args.store, async (sessions) =>
    sessions.store.get(await resolveId(sessions, typed, user)),
  );
  const now = Date.now();
  if (!record || expiryOf(record) <= now || (record.via && record.via.until <= now)) {
    throw new Failure(`no live session with id "${typed}"`);
  }
  if (args.values.json === true) {
    const detail = {
      ...sessionJson(record),
      version: record.version,
      rotatedAt: new Date(record.rotatedAt).toISOString(),
      renamedFrom: record.via
        ? { id: record.via.from, until: new Date(record.via.until).toISOString() }
        : null,
      channel: record.channel ? { algorithm: record.channel.algorithm } : null,
      connection: record.connection
        ? { id: record.connection.id, node: record.connection.node, generation: record.connection.generation }
        : null,
    };
    io.out(JSON.stringify(detail));
    return 0;
  }
  const { [CSRF_KEY]: _csrf, ...attributes } = record.attributes;
  const pairs: [string, string][] = [
    ["id", record.id],
    ...(record.via
      ? [["renamed from", `${record.via.from} (alias until ${time(record.via.until)})`] as [string, string]]
      : []),
    ["user", record.userId ?? "- (signed out)"],
    ["level", `${levelName(record.level)} (${record.level})`],
    ["login type", record.loginType],
    ["last login", time(record.lastLoginAt)],
    ["created", time(record.createdAt)],
    ["id issued", time(record.rotatedAt)],
    ["expires", time(record.expiresAt)],
    ["idle expires", time(record.idleExpiresAt)],
    ["version", String(record.version)],
    ["language", record.language ?? "-"],
    ["channel", record.channel ? `${record.channel.algorithm} (secret sealed)` : "-"],
    ["connection", record.connection ? `${record.connection.id} on ${record.connection.node}` : "-"],
  ];
  for (const line of facts(pairs)) io.out(line);
  const keys = Object.keys(attributes);
  io.out(keys.length === 0 ? "attributes    (none)" : "attributes");
  for (const key of keys) io.out(`  ${key}: ${JSON.stringify(attributes[key])}`);
  return 0;
}
