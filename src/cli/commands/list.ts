import { isStorableText } from "../../core/json.js";
import { expiryOf } from "../../core/record.js";
import { type Io, parse, STORE_HELP } from "../args.js";
import { levelName, prefix, table, time } from "../format.js";
import { sessionJson } from "../json.js";
import { usingStore } from "../store.js";

export const summary = "list live sessions: one user's, or the whole store's";

export const help = `Usage: stowage list [--user USER] [--json] [--store URL]

Lists live sessions: id prefix, user, device, created, expires, level. With --user, that
user's, oldest first; without, every session of the store (signed in or not), streamed page
by page so a store of millions lists without holding them all. Tokens are never shown.

  --user USER    only this user's sessions
  --json         one JSON object per line, whole ids (the schema is in docs/cli.md)
${STORE_HELP}`;

/** `stowage list [--user U] [--json]` */
export async function run(argv: string[], io: Io): Promise<number> {
  const args = parse(argv, { user: { type: "string", short: "u" }, json: { type: "boolean" } }, { max: 0 });
  const user = typeof args.values.user === "string" ? args.values.user : undefined;
  const json = args.values.json === true;
  if (user !== undefined) return listUser(args.store, user, json, io);
  return usingStore(args.store, async (sessions) => {
    let count = 0;
    let headed = false;
    for await (const page of sessions.store.scan({ batch: 1000 })) {
      const now = Date.now();
      const live = page.filter((record) => expiryOf(record) > now);
      count += live.length;
      if (json) {
        io.out(live.map((record) => JSON.stringify(sessionJson(record))).join("\n"));
      } else {
        // Fixed widths, so pages line up without holding the whole store to measure it.
        if (!headed) io.out(row(["ID", "USER", "CREATED", "EXPIRES", "LEVEL", "DEVICE"]));
        headed = true;
        for (const r of live) {
          const device = typeof r.attributes.device === "string" ? r.attributes.device : "-";
          io.out(
            row([
              prefix(r.id),
              clip(r.userId ?? "-", 16),
              time(r.createdAt),
              time(expiryOf(r)),
              levelName(r.level),
              device,
            ]),
          );
        }
      }
      await io.drain();
    }
    if (!json) io.out(`${count} live session${count === 1 ? "" : "s"} in the store`);
    return 0;
  });
}

async function listUser(store: string, user: string, json: boolean, io: Io): Promise<number> {
  const records = await usingStore(store, async (sessions) => {
    const now = Date.now();
    // No session is signed in as text login refuses; a store might match it to a mangled spelling.
    if (user === "" || !isStorableText(user)) return [];
    return (await sessions.store.listByUser(user))
      .filter((r) => expiryOf(r) > now)
      .sort((a, b) => a.createdAt - b.createdAt);
  });
  if (json) {
    for (const record of records) io.out(JSON.stringify(sessionJson(record)));
    return 0;
  }
  if (records.length === 0) {
    io.out(`no live sessions for user "${user}"`);
    return 0;
  }
  const rows = records.map((s) => [
    prefix(s.id),
    typeof s.attributes.device === "string" ? s.attributes.device : "-",
    time(s.createdAt),
    time(expiryOf(s)),
    levelName(s.level),
  ]);
  for (const line of table(["ID", "DEVICE", "CREATED", "EXPIRES", "LEVEL"], rows)) io.out(line);
  io.out(`${records.length} live session${records.length === 1 ? "" : "s"} for user "${user}"`);
  return 0;
}

const WIDTHS = [8, 16, 20, 20, 20];

function row(cells: string[]): string {
  return cells
    .map((cell, i) => (i < WIDTHS.length ? cell.padEnd(WIDTHS[i]!) : cell))
    .join("  ")
    .trimEnd();
}

function clip(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, width - 1)}…`;
}
