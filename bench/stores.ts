import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import session from "express-session";
import { type Attributes, createSessions, MemoryStore, type Session, type SessionRecord } from "stowage";
import { SqliteStore } from "stowage/sqlite";
import { expressSessionData, expressSessionId, rate } from "./common.js";
import { jsonBytes, oneKbAttributes } from "./fixtures.js";
import { measure } from "./micro.js";
import { type GroupReport, infoRow, type Rate, ratioRow } from "./report.js";

// Operations per timed call: enough that the timer and the await are noise, and the shape a busy server
// has (many requests in flight, so express-session's setImmediate-deferred callbacks are served in one
// turn of the event loop rather than one turn each).
const BATCH = 100;
// SQLite writes fsync each commit (synchronous = FULL on both sides), so fewer per call keep the
// iteration count up.
const WRITE_BATCH = 10;
const IDLE_MS = 30 * 60_000;

function recordTemplate(attributes: Attributes): SessionRecord {
  const now = Date.now();
  return {
    id: "",
    verifier: randomBytes(32).toString("base64url"),
    version: 1,
    createdAt: now,
    rotatedAt: now,
    expiresAt: now + 14 * 86_400_000,
    idleExpiresAt: now + IDLE_MS,
    level: 0,
    loginType: "unspecified",
    attributes,
  };
}

async function memoryFigures(): Promise<GroupReport["rows"]> {
  const store = new MemoryStore();
  const sessions = createSessions({ store });
  const fixture = oneKbAttributes();
  const tokens: string[] = [];
  const ids: string[] = [];
  for (let i = 0; i < BATCH; i++) {
    const s = sessions.create({ attributes: fixture });
    await s.save();
    tokens.push(s.token);
    ids.push(s.id);
  }
  const loaded = (await Promise.all(tokens.map((t) => sessions.load(t)))) as Session[];

  const es = new session.MemoryStore();
  const esGet = promisify(es.get.bind(es));
  const esSet = promisify(es.set.bind(es));
  const esDestroy = promisify(es.destroy.bind(es));
  const sids = Array.from({ length: BATCH }, expressSessionId);
  const esData = sids.map(() => expressSessionData(oneKbAttributes()));
  await Promise.all(sids.map((sid, i) => esSet(sid, esData[i]!)));

  let counter = 0;
  const template = recordTemplate(fixture);
  let created: string[] = [];
  let esCreated: string[] = [];

  const figures = await measure([
    { name: "load", batch: BATCH, fn: () => Promise.all(tokens.map((t) => sessions.load(t))) },
    { name: "get", batch: BATCH, fn: () => Promise.all(ids.map((id) => store.get(id))) },
    { name: "es-get", batch: BATCH, fn: () => Promise.all(sids.map((sid) => esGet(sid))) },
    {
      name: "commit-manager",
      batch: BATCH,
      fn: () =>
        Promise.all(
          loaded.map((s) => {
            s.set("counter", ++counter);
            return sessions.commit(s);
          }),
        ),
    },
    {
      name: "commit-store",
      batch: BATCH,
      fn: () => {
        const idle = Date.now() + IDLE_MS;
        return Promise.all(
          ids.map((id) => store.commit(id, { set: { counter: ++counter }, meta: { idleExpiresAt: idle } })),
        );
      },
    },
    {
      name: "es-set",
      batch: BATCH,
      fn: () =>
        Promise.all(
          sids.map((sid, i) => {
            const data = esData[i]!;
            data.counter = ++counter;
            return esSet(sid, data);
          }),
        ),
    },
    {
      name: "create-manager",
      batch: BATCH,
      fn: async () => {
        const batch = Array.from({ length: BATCH }, () => sessions.create({ attributes: fixture }));
        await Promise.all(batch.map((s) => sessions.commit(s)));
        created = batch.map((s) => s.id);
      },
      afterEach: () => Promise.all(created.map((id) => store.delete(id))),
    },
    {
      name: "create-store",
      batch: BATCH,
      fn: () => {
        created = Array.from({ length: BATCH }, () => randomBytes(16).toString("base64url"));
        return Promise.all(created.map((id) => store.insert({ ...template, id })));
      },
      afterEach: () => Promise.all(created.map((id) => store.delete(id))),
    },
    {
      name: "es-create",
      batch: BATCH,
      fn: () => {
        esCreated = Array.from({ length: BATCH }, expressSessionId);
        return Promise.all(esCreated.map((sid) => esSet(sid, expressSessionData(fixture))));
      },
      afterEach: () => Promise.all(esCreated.map((sid) => esDestroy(sid))),
    },
  ]);
  await sessions.close();

  const peer = (name: string, label: string): Rate => rate(label, figures, name);
  return [
    ratioRow(
      "MemoryStore get, through the manager",
      rate("sessions.load(token)", figures, "load"),
      peer("es-get", "MemoryStore.get"),
      1.2,
    ),
    ratioRow(
      "MemoryStore get, raw store call",
      rate("store.get(id)", figures, "get"),
      peer("es-get", "MemoryStore.get"),
      1.2,
    ),
    ratioRow(
      "MemoryStore commit of one changed key, through the manager",
      rate("set + sessions.commit", figures, "commit-manager"),
      peer("es-set", "MemoryStore.set"),
      1.2,
    ),
    ratioRow(
      "MemoryStore commit of one changed key, raw store call",
      rate("store.commit(id, delta)", figures, "commit-store"),
      peer("es-set", "MemoryStore.set"),
      1.2,
    ),
    ratioRow(
      "MemoryStore create, through the manager",
      rate("create + commit", figures, "create-manager"),
      peer("es-create", "new id + MemoryStore.set"),
    ),
    ratioRow(
      "MemoryStore create, raw store call",
      rate("store.insert(record)", figures, "create-store"),
      peer("es-create", "new id + MemoryStore.set"),
    ),
  ];
}

async function sqliteFigures(): Promise<GroupReport["rows"]> {
  const dir = mkdtempSync(join(tmpdir(), "stowage-bench-"));
  const store = new SqliteStore({ path: join(dir, "sessions.db"), sweepIntervalMs: 0 });
  try {
    const sessions = createSessions({ store });
    const fixture = oneKbAttributes();
    const tokens: string[] = [];
    const ids: string[] = [];
    for (let i = 0; i < BATCH; i++) {
      const s = sessions.create({ attributes: fixture });
      await s.save();
      tokens.push(s.token);
      ids.push(s.id);
    }
    const loaded = (await Promise.all(
      tokens.slice(0, WRITE_BATCH).map((t) => sessions.load(t)),
    )) as Session[];
    // The peer runs on the store's own connection: same file, same page cache, same pragmas.
    const db = store.db;
    const select = db.prepare<[string], { attributes: string }>(
      "SELECT * FROM stowage_sessions WHERE id = ?",
    );
    const update = db.prepare<[number, number, string]>(
      `UPDATE stowage_sessions SET attributes = json_set(attributes, '$.counter', ?),
         idle_expires_at = ?, version = version + 1 WHERE id = ?`,
    );
    const insert = db.prepare(
      `INSERT INTO stowage_sessions (id, verifier, version, created_at, rotated_at, expires_at,
         idle_expires_at, level, login_type, attributes) VALUES (?, ?, 1, ?, ?, ?, ?, 0, 'unspecified', ?)`,
    );
    const template = recordTemplate(fixture);
    let counter = 0;
    const figures = await measure([
      { name: "load", batch: BATCH, fn: () => Promise.all(tokens.map((t) => sessions.load(t))) },
      { name: "get", batch: BATCH, fn: () => Promise.all(ids.map((id) => store.get(id))) },
      {
        name: "raw-get",
        batch: BATCH,
        fn: () => {
          const out = [];
          for (const id of ids) {
            const row = select.get(id)!;
            out.push({ ...row, attributes: JSON.parse(row.attributes) as Attributes });
          }
          return out;
        },
      },
      {
        name: "commit-manager",
        batch: WRITE_BATCH,
        fn: () =>
          Promise.all(
            loaded.map((s) => {
              s.set("counter", ++counter);
              return sessions.commit(s);
            }),
          ),
      },
      {
        name: "commit-store",
        batch: WRITE_BATCH,
        fn: () => {
          const idle = Date.now() + IDLE_MS;
          return Promise.all(
            ids
              .slice(0, WRITE_BATCH)
              .map((id) => store.commit(id, { set: { counter: ++counter }, meta: { idleExpiresAt: idle } })),
          );
        },
      },
      {
        name: "raw-commit",
        batch: WRITE_BATCH,
        fn: () => {
          const idle = Date.now() + IDLE_MS;
          for (const id of ids.slice(0, WRITE_BATCH)) update.run(++counter, idle, id);
        },
      },
      {
        name: "create-manager",
        batch: WRITE_BATCH,
        fn: () =>
          Promise.all(
            Array.from({ length: WRITE_BATCH }, () =>
              sessions.commit(sessions.create({ attributes: fixture })),
            ),
          ),
      },
      {
        name: "create-store",
        batch: WRITE_BATCH,
        fn: () =>
          Promise.all(
            Array.from({ length: WRITE_BATCH }, () =>
              store.insert({ ...template, id: randomBytes(16).toString("base64url") }),
            ),
          ),
      },
      {
        name: "raw-create",
        batch: WRITE_BATCH,
        fn: () => {
          for (let i = 0; i < WRITE_BATCH; i++) {
            const t = template;
            const id = randomBytes(16).toString("base64url");
            insert.run(
              id,
              t.verifier,
              t.createdAt,
              t.rotatedAt,
              t.expiresAt,
              t.idleExpiresAt,
              JSON.stringify(t.attributes),
            );
          }
        },
      },
    ]);
    await sessions.close();
    const raw = (name: string, label: string): Rate => rate(label, figures, name);
    return [
      ratioRow(
        "SqliteStore get, raw store call",
        rate("store.get(id)", figures, "get"),
        raw("raw-get", "prepared SELECT + JSON.parse"),
        0.5,
      ),
      ratioRow(
        "SqliteStore get, through the manager",
        rate("sessions.load(token)", figures, "load"),
        raw("raw-get", "prepared SELECT + JSON.parse"),
      ),
      ratioRow(
        "SqliteStore commit of one changed key, raw store call",
        rate("store.commit(id, delta)", figures, "commit-store"),
        raw("raw-commit", "UPDATE … json_set"),
      ),
      ratioRow(
        "SqliteStore commit of one changed key, through the manager",
        rate("set + sessions.commit", figures, "commit-manager"),
        raw("raw-commit", "UPDATE … json_set"),
      ),
      ratioRow(
        "SqliteStore create, raw store call",
        rate("store.insert(record)", figures, "create-store"),
        raw("raw-create", "prepared INSERT"),
      ),
      ratioRow(
        "SqliteStore create, through the manager",
        rate("create + commit", figures, "create-manager"),
        raw("raw-create", "prepared INSERT"),
      ),
    ];
  } finally {
    await store.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Group "stores" (issue Foundation): MemoryStore and SqliteStore against express-session and raw SQLite. */
export async function run(): Promise<GroupReport> {
  const memory = await memoryFigures();
  const sqlite = await sqliteFigures();
  return {
    group: "stores",
    title: 'Stores (issue "Foundation"): MemoryStore and SqliteStore',
    rows: [
      ...memory,
      ...sqlite,
      infoRow("Session size (JSON of the attributes)", `${jsonBytes(oneKbAttributes())} B`),
    ],
    notes: [
      `Each timed call runs ${BATCH} operations (SQLite writes: ${WRITE_BATCH}) over distinct sessions with` +
        " `Promise.all`, as a server with many requests in flight does. express-session's MemoryStore is" +
        " called through `util.promisify` of its callback API; it defers every callback with `setImmediate`," +
        " so in a batch those callbacks share one event-loop turn instead of paying one turn each — the" +
        " fairer setting for it. Each figure is the median of six rounds of 300 ms (the first after 1 s of warm-up), the task order reversed every other round.",
      "The express-session session carries its cookie object, as express-session persists it;" +
        " its `set` writes the whole session (that is its API), stowage's commit writes the one changed key" +
        " plus the idle expiry.",
      "`sessions.load(token)` does more than a store read: it parses the token, checks SHA-256(secret)" +
        " against the stored verifier in constant time, checks expiry and builds the `Session`.",
      "Create through the manager validates and copies each attribute at `set` (a walk that refuses non-JSON" +
        " values, JSON.stringify, JSON.parse for a private copy), mints a token (48 CSPRNG bytes and a SHA-256)" +
        " and inserts a copy; express-session's create is one JSON.stringify. Create happens once per" +
        " session, load and commit once per request.",
      "SQLite runs with WAL and `synchronous = FULL` (an fsync per commit, as shipped); the raw peers use" +
        " the store's own connection, so file, page cache and pragmas are the same. The database file is in" +
        ` ${tmpdir()} on disk.`,
    ],
  };
}
