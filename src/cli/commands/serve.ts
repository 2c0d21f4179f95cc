import type { Demo } from "../../demo/index.js";
import { openStore } from "../../stores/open.js";
import { Failure, type Io, parse, positiveInt, STORE_HELP, UsageError } from "../args.js";

export const summary = "run the demo web app";

export const help = `Usage: stowage serve [--port N] [--host ADDR] [--store URL]

Runs the demo web app (sign in, the current session, a counter, your devices) until
interrupted with Ctrl-C.

  --port N       TCP port (default: the PORT variable, else 3000)
  --host ADDR    address to listen on (default localhost: 127.0.0.1 and ::1)
${STORE_HELP}`;

/** `stowage serve`: resolves once the server has stopped after SIGINT or SIGTERM. */
export async function run(argv: string[], io: Io): Promise<number> {
  const args = parse(argv, { port: { type: "string", short: "p" }, host: { type: "string" } }, { max: 0 });
  const port = positiveInt(
    args.values.port ?? nonEmpty(io.env.PORT),
    args.values.port ? "--port" : "PORT",
    3000,
    65535,
  );
  const host = args.values.host ?? "localhost";
  if (typeof host !== "string" || host === "") throw new UsageError("--host needs an address");
  const store = await openStore(args.store);
  // Loaded here so the other commands never load the web stack.
  const { startDemo } = await import("../../demo/index.js");
  let demo: Demo;
  try {
    demo = await startDemo({ store, port, host });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EADDRINUSE") throw new Failure(`port ${port} is already in use; pick another with --port`);
    if (code === "EACCES") throw new Failure(`no permission to listen on port ${port}`);
    throw error;
  }
  io.err(`stowage demo on ${demo.url} (${store.name} store); Ctrl-C stops it`);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  io.err(`${signal}: stopping`);
  await demo.close();
  return 0;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === "" ? undefined : value;
}
