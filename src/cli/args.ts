import { type ParseArgsConfig, parseArgs } from "node:util";

/** Wrong use of the command line: reported with a hint to `--help` and exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** A failure the user can act on (not found, port in use): reported without a stack, exit code 1. */
export class Failure extends Error {
  override name = "Failure";
}

/** Where a command writes: results to `out`, progress and notes to `err`. */
export interface Io {
  out(line: string): void;
  err(line: string): void;
  /** Rewrites the current progress line in place (only on a terminal). */
  status(text: string): void;
  /** Resolves once what `out` wrote has gone to the OS, so a long listing never piles up in memory. */
  drain(): Promise<void>;
  /** Clears the terminal, for a view that redraws itself (only when stdout is a terminal). */
  clearScreen(): void;
  /** True when stdout is a terminal. */
  readonly outTty: boolean;
  /** True when stderr is a terminal, so progress may redraw one line. */
  readonly tty: boolean;
  /** Environment variables (PORT). */
  readonly env: NodeJS.ProcessEnv;
}

/** The store used when `--store` is not given. */
export const DEFAULT_STORE = "sqlite:./data/sessions.db";

type Options = NonNullable<ParseArgsConfig["options"]>;

const COMMON: Options = {
  store: { type: "string" },
  help: { type: "boolean", short: "h" },
};

/** Parsed arguments of one command. */
export interface Parsed {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
  store: string;
}

/** Parses a command's arguments strictly; unknown options, missing values and extra positionals are UsageErrors. */
export function parse(argv: string[], options: Options, positionals: { max: number }): Parsed {
  let result: ReturnType<typeof parseArgs>;
  try {
    result = parseArgs({
      args: argv,
      options: { ...COMMON, ...options },
      allowPositionals: true,
      strict: true,
      tokens: true,
    });
  } catch (error) {
    // node:util messages are clear ("Unknown option '--x'"); drop their long "To specify a positional..." tail.
    const message = error instanceof Error ? error.message.split(". To specify")[0]! : String(error);
    // Session ids are base64url, so one in 64 starts with "-" and reads as an option.
    const hint = /^Unknown option '-[^-]/.test(message) ? ` (an ID that starts with "-" goes after --)` : "";
    throw new UsageError(message + hint);
  }
  // parseArgs keeps the last of a repeated option: `--user a --user b` would silently mean b alone.
  const seen = new Set<string>();
  for (const token of result.tokens ?? []) {
    if (token.kind !== "option") continue;
    if (seen.has(token.name)) throw new UsageError(`--${token.name} given more than once`);
    seen.add(token.name);
  }
  const values = result.values as Record<string, string | boolean | undefined>;
  if (result.positionals.length > positionals.max) {
    throw new UsageError(`unexpected argument "${result.positionals[positionals.max]}"`);
  }
  const store = values.store;
  if (store === "") throw new UsageError("--store needs a URL");
  return {
    values,
    positionals: result.positionals,
    store: typeof store === "string" ? store : DEFAULT_STORE,
  };
}

/** A positive integer option, or `fallback` when absent. */
export function positiveInt(
  value: string | boolean | undefined,
  name: string,
  fallback: number,
  max = 1e9,
): number {
  if (value === undefined) return fallback;
  const n = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > max) {
    throw new UsageError(`${name} must be a whole number from 1 to ${max}`);
  }
  return n;
}

/** A non-empty string option. */
export function requiredString(value: string | boolean | undefined, name: string): string {
  if (typeof value !== "string" || value === "") throw new UsageError(`${name} is required`);
  return value;
}

/** The `--store` line every command's help shows. */
export const STORE_HELP = `  --store URL    memory:, sqlite:PATH, redis://host:port, redis+cluster://h:p,h:p or
                 postgres://user@host:port/db (default ${DEFAULT_STORE})
  -h, --help     show this help`;
