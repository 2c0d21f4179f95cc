#!/usr/bin/env node
import { readFileSync } from "node:fs";
import { isStowageError } from "../core/errors.js";
import { Failure, type Io, UsageError } from "./args.js";
import * as bench from "./commands/bench.js";
import * as list from "./commands/list.js";
import * as revoke from "./commands/revoke.js";
import * as serve from "./commands/serve.js";
import * as show from "./commands/show.js";
import * as stats from "./commands/stats.js";
import * as sweep from "./commands/sweep.js";

interface Command {
  summary: string;
  help: string;
  run(argv: string[], io: Io): Promise<number>;
}

// Read at run time from the package's own manifest, two folders up from dist/cli/main.js (or src/cli).
const VERSION = (
  JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }
).version;

const COMMANDS: Record<string, Command> = { serve, list, show, revoke, sweep, stats, bench };

const USAGE = `Usage: stowage <command> [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`)
  .join("\n")}

Every command takes --store URL (default sqlite:./data/sessions.db) and --help.
stowage --version prints the version.`;

/** Runs the CLI with `argv` (without node and the script) and resolves the exit code. */
async function main(argv: string[], io: Io): Promise<number> {
  const [name, ...rest] = argv;
  if (name === "--version" || name === "-v") {
    io.out(VERSION);
    return 0;
  }
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    (name === undefined ? io.err : io.out)(USAGE);
    return name === undefined ? 2 : 0;
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) {
    io.err(`stowage: unknown command "${name}"\n\n${USAGE}`);
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    io.out(command.help);
    return 0;
  }
  try {
    return await command.run(rest, io);
  } catch (error) {
    return report(error, name, io);
  }
}

function report(error: unknown, name: string, io: Io): number {
  if (error instanceof UsageError) {
    io.err(`stowage ${name}: ${error.message}\nRun "stowage ${name} --help" for usage.`);
    return 2;
  }
  if (isStowageError(error, "CONFIG_INVALID")) {
    io.err(`stowage ${name}: ${error.message}`);
    return 2;
  }
  if (error instanceof Failure) {
    io.err(`stowage ${name}: ${error.message}`);
    return 1;
  }
  if (isStowageError(error)) {
    const cause = error.cause instanceof Error ? ` (${error.cause.message})` : "";
    io.err(`stowage ${name}: ${error.code}: ${error.message}${cause}`);
    return 1;
  }
  io.err(`stowage ${name}: unexpected error`);
  io.err(error instanceof Error ? (error.stack ?? error.message) : String(error));
  return 1;
}

function processIo(): Io {
  const tty = process.stderr.isTTY === true;
  let drawn = false;
  const clear = () => {
    if (drawn) process.stderr.write("\r\x1b[2K");
    drawn = false;
  };
  return {
    out: (line) => {
      clear();
      process.stdout.write(`${line}\n`);
    },
    err: (line) => {
      clear();
      process.stderr.write(`${line}\n`);
    },
    status: (text) => {
      clear();
      if (text === "") return;
      process.stderr.write(text);
      drawn = true;
    },
    drain: () =>
      process.stdout.writableNeedDrain
        ? new Promise<void>((resolve) => process.stdout.once("drain", () => resolve()))
        : Promise.resolve(),
    clearScreen: () => {
      process.stdout.write("\x1b[H\x1b[2J");
    },
    outTty: process.stdout.isTTY === true,
    tty,
    env: process.env,
  };
}

// Exit code through process.exitCode, so stdout is flushed before the process ends.
process.exitCode = await main(process.argv.slice(2), processIo());
