// Group "instructions": user-space instructions per request, counted by valgrind's callgrind, for the
// HTTP servers of bench/http-server.ts. CPU time per request on a small VM swings by a third between runs
// of the same server; an instruction count repeats to a fraction of a percent, so it tells whether a
// change to the request path did anything at all. It counts user space only: the kernel's part (about
// half of a node:http server's CPU: the same socket read and write per request for every server) is left
// out.
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { login } from "./common.js";
import type { GroupReport, Row } from "./report.js";

const SERVER = fileURLToPath(new URL("./http-server.ts", import.meta.url));
const CONNECTIONS = 50;
// Requests before counting starts: uninstrumented (JIT warm-up at full speed), then instrumented (valgrind
// translates the code it now runs), then counted.
const WARM = 4000;
const WARM_INSTRUMENTED = 2000;
const COUNTED = 3000;
// A request takes about 25 times as long under callgrind (0.9 ms against 40 µs of wall time per request
// here), so MemoryStore's timer, on wall time, would pack idle records 25 times as often per request:
// its one-second interval is stretched as much.
const SWEEP_MS = "25000";
// What the count leaves out beside the total: V8's garbage collector and its compilers, whose share of one
// window depends on when they happen to run rather than on the request path.
const GC =
  /Scaveng|Marking|MarkCompact|Sweep|heap::|Heap::|Evacuat|MemoryChunk|Ephemeron|RememberedSet|SlotSet|PagedSpace|FreeList/;
const COMPILER =
  /compiler::|maglev|Compiler|v8::internal::(Pre)?Parser\b|ParserBase|BytecodeGenerator|Zone::/;

/** What each counted request is: GET / on a session of 1 KB or of three small attributes, or a new session. */
type Load = "1kb" | "small" | "create";

/** Instructions per counted request: all of them, and those of the program itself (no GC, no compiler). */
interface Count {
  total: number;
  program: number;
}

/** A bench server under callgrind, with instrumentation off until `count` turns it on. */
async function startCounted(scenario: string, dir: string): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(
    "valgrind",
    [
      "--tool=callgrind",
      "--instr-atstart=no",
      `--callgrind-out-file=${join(dir, "callgrind.%p")}`,
      process.execPath,
      "--import",
      "tsx",
      SERVER,
      scenario,
      `stowage-bench-instructions-${scenario}:`,
    ],
    {
      stdio: ["ignore", "inherit", "ignore", "ipc"],
      env: { ...process.env, STOWAGE_BENCH_SWEEP_MS: SWEEP_MS },
    },
  );
  const [message] = (await Promise.race([
    once(child, "message"),
    once(child, "exit").then(([code]) => {
      throw new Error(`${scenario} under valgrind exited with ${code}`);
    }),
  ])) as [{ port: number }];
  return { child, port: message.port };
}

/**
 * `times` requests one after another on one keep-alive socket. The same sockets serve every phase, so
 * no connection opens or closes while instructions are counted.
 */
function requests(socket: Socket, cookie: string | undefined, times: number): Promise<void> {
  // With no cookie, each request logs in: a new session with the ~1 KB of attributes.
  const request =
    cookie === undefined
      ? "GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
      : `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: ${cookie}\r\n\r\n`;
  return new Promise((resolve, reject) => {
    let buffered = "";
    let done = 0;
    const onData = (chunk: Buffer): void => {
      buffered += chunk.toString("latin1");
      for (;;) {
        const end = buffered.indexOf("\r\n\r\n");
        if (end === -1) return;
        const head = buffered.slice(0, end);
        if (!head.startsWith("HTTP/1.1 200")) {
          socket.off("data", onData);
          reject(new Error(`unexpected answer: ${head.split("\r\n")[0]}`));
          return;
        }
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (buffered.length < end + 4 + length) return;
        buffered = buffered.slice(end + 4 + length);
        if (++done === times) {
          socket.off("data", onData);
          resolve();
          return;
        }
        socket.write(request);
      }
    };
    socket.on("data", onData);
    socket.write(request);
  });
}

function control(args: string[], pid: number): void {
  execFileSync("callgrind_control", [...args, String(pid)], { stdio: "ignore" });
}

/** Instructions per request of one server: warm-up, then `COUNTED` requests with counters zeroed. */
async function count(scenario: string, load: Load): Promise<Count> {
  const dir = mkdtempSync(join(tmpdir(), "stowage-callgrind-"));
  const { child, port } = await startCounted(scenario, dir);
  const sockets: Socket[] = [];
  try {
    const cookies =
      load === "create" ? [] : await login(`http://127.0.0.1:${port}`, CONNECTIONS, load === "small");
    if (cookies.includes("")) throw new Error(`${scenario} set no cookie`);
    for (let i = 0; i < CONNECTIONS; i++) {
      const socket = connect(port, "127.0.0.1");
      await once(socket, "connect");
      socket.setNoDelay(true);
      sockets.push(socket);
    }
    const all = (total: number) =>
      Promise.all(sockets.map((s, i) => requests(s, cookies[i], Math.ceil(total / CONNECTIONS))));
    await all(WARM);
    control(["-i", "on"], child.pid!);
    await all(WARM_INSTRUMENTED);
    control(["-z"], child.pid!);
    await all(COUNTED);
    control(["-d"], child.pid!);
    const served = Math.ceil(COUNTED / CONNECTIONS) * CONNECTIONS;
    // One file per dump; the counted window's is the largest (the others hold nothing or the start).
    const dump = readdirSync(dir)
      .map((f) => join(dir, f))
      .sort((a, b) => statSync(b).size - statSync(a).size)[0];
    if (dump === undefined) throw new Error("callgrind wrote no dump");
    return perRequest(dump, served);
  } finally {
    for (const socket of sockets) socket.destroy();
    child.kill("SIGKILL");
    await once(child, "exit").catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

function perRequest(dump: string, served: number): Count {
  const text = execFileSync("callgrind_annotate", ["--threshold=100", dump], {
    maxBuffer: 1 << 28,
  }).toString();
  let total = 0;
  let aside = 0;
  for (const line of text.split("\n")) {
    const match = /^\s*([\d,]+) \([ \d.]+%\)\s+(.*)$/.exec(line);
    if (!match || match[2]!.includes("PROGRAM TOTALS")) continue;
    const instructions = Number(match[1]!.replaceAll(",", ""));
    total += instructions;
    if (GC.test(match[2]!) || COMPILER.test(match[2]!)) aside += instructions;
  }
  return { total: total / served, program: (total - aside) / served };
}

function kilo(n: number): string {
  return `${(n / 1000).toFixed(1)} k`;
}

/** Rows for stowage beside one peer: the program's instructions and the total, each with its ratio. */
function rows(metric: string, ours: [string, Count], peer: [string, Count]): Row[] {
  const row = (what: string, of: keyof Count): Row => ({
    metric: `${metric}: instructions per request, ${what}`,
    stowage: `${ours[0]}: ${kilo(ours[1][of])}`,
    peer: `${peer[0]}: ${kilo(peer[1][of])}`,
    ratio: peer[1][of] / ours[1][of],
  });
  return [row("program only", "program"), row("with GC and compilers", "total")];
}

/** Group "instructions": the node:http and express servers of the HTTP group, counted under callgrind. */
export async function run(): Promise<GroupReport> {
  const title = "HTTP: user-space instructions per request (callgrind)";
  const found = spawnSync("valgrind", ["--version"], { stdio: "ignore" });
  if (found.error !== undefined || found.status !== 0) {
    return {
      group: "instructions",
      title,
      rows: [],
      notes: ["Not measured: valgrind is not installed (Debian: `apt-get install valgrind`)."],
    };
  }
  const nodeMap = await count("node-map", "1kb");
  const nodeStowage = await count("node-stowage", "1kb");
  const expressSession = await count("express-session", "1kb");
  const expressStowage = await count("express-stowage", "1kb");
  const expressSessionSmall = await count("express-session", "small");
  const expressStowageSmall = await count("express-stowage", "small");
  const expressBareSmall = await count("express-bare", "small");
  const creationSession = await count("express-session", "create");
  const creationStowage = await count("express-stowage", "create");
  return {
    group: "instructions",
    title,
    rows: [
      ...rows(
        "node:http + stowage (MemoryStore, 1 KB) vs the bare Map handler",
        ["withSessions", nodeStowage],
        ["Map by cookie", nodeMap],
      ),
      ...rows(
        "express + stowage vs express + express-session (MemoryStore, 1 KB)",
        ["sessionMiddleware", expressStowage],
        ["express-session", expressSession],
      ),
      ...rows(
        "express + stowage vs express + express-session (MemoryStore, small sessions)",
        ["sessionMiddleware", expressStowageSmall],
        ["express-session", expressSessionSmall],
      ),
      ...rows(
        "express + stowage vs express with no session (small sessions)",
        ["sessionMiddleware", expressStowageSmall],
        ["express alone", expressBareSmall],
      ),
      ...rows(
        "express: a new session with 1 KB on every request (MemoryStore), stowage vs express-session",
        ["sessionMiddleware", creationStowage],
        ["express-session", creationSession],
      ),
    ],
    notes: [
      `Each server of the HTTP group (bench/http-server.ts) runs alone under valgrind's callgrind; ${CONNECTIONS}` +
        " keep-alive connections, each with its own session from the server's /login (or /login-small), send" +
        " GET / one after another (increment a counter, answer it); for the new-session rows they send GET" +
        ` /login with no cookie instead. ${WARM} requests uninstrumented to warm the` +
        ` JIT, ${WARM_INSTRUMENTED} instrumented, then the counters are zeroed and ${COUNTED} requests counted.` +
        " The same sockets serve every phase. A request takes about 25 times as long under callgrind, so" +
        " MemoryStore's timer (which packs idle records) runs at 25 s instead of 1 s, to do per request what" +
        " it does at full speed. Ratio: the peer's count ÷ stowage's, so above 1 is stowage ahead.",
      "Instructions of the server process in user space, all threads. 'Program only' leaves out V8's garbage" +
        " collector and compilers, whose share of a window depends on when they run: on this machine it" +
        " repeated within about 1% for node:http and 2% for express, whose count still moves with how often the" +
        " collector ran in the window. The kernel's work (the socket read and write, about half of a node:http" +
        " server's CPU) is not counted; server CPU per request is in the HTTP group.",
    ],
  };
}
