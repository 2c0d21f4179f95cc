import { StowageError } from "./errors.js";

/**
 * The one option checker: every constructor and factory that takes options checks them here, so units
 * and wording are the same everywhere. Plain JavaScript callers get no type check, so unknown keys (a
 * misspelling, an express-session option that means nothing here) are refused too. Messages name the
 * option and echo a number, never other values: an option may hold a URL with a password.
 */
export class OptionChecker {
  readonly #owner: string;
  readonly #options: Readonly<Record<string, unknown>>;

  /** Refuses anything but a plain object (or undefined), and keys outside `known`. */
  constructor(owner: string, options: unknown, known: readonly string[]) {
    this.#owner = owner;
    if (options === undefined || options === null) {
      this.#options = {};
      return;
    }
    if (typeof options !== "object" || Array.isArray(options)) {
      throw this.#invalid(`options must be an object, not ${describe(options)}`);
    }
    for (const key of Object.keys(options)) {
      if (!known.includes(key)) {
        throw this.#invalid(`unknown option "${key}" (known: ${known.join(", ")})`);
      }
    }
    this.#options = options as Record<string, unknown>;
  }

  /** The raw value of an option, for options with a shape of their own (checked by the caller). */
  raw(name: string): unknown {
    return this.#options[name];
  }

  /** A duration in ms: finite and positive, or zero where `zero` allows it. */
  ms(name: string, fallback: number, { zero = false }: { zero?: boolean } = {}): number {
    const value = this.#options[name] ?? fallback;
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || (value === 0 && !zero)) {
      throw this.#invalid(
        `${name} must be ${zero ? "zero or more" : "a positive number of"} milliseconds, not ${describe(value)}`,
      );
    }
    return value;
  }

  /** A size in bytes: a positive integer. */
  bytes(name: string, fallback: number): number {
    const value = this.#options[name] ?? fallback;
    if (!Number.isSafeInteger(value) || (value as number) <= 0) {
      throw this.#invalid(`${name} must be a positive whole number of bytes, not ${describe(value)}`);
    }
    return value as number;
  }

  /** A count: a whole number of at least `min` (or Infinity where `infinite` allows it). */
  count(
    name: string,
    fallback: number,
    { min = 1, infinite = false }: { min?: number; infinite?: boolean } = {},
  ) {
    const value = this.#options[name] ?? fallback;
    const ok =
      (Number.isSafeInteger(value) && (value as number) >= min) ||
      (infinite && value === Number.POSITIVE_INFINITY);
    if (!ok) throw this.#invalid(`${name} must be a whole number of at least ${min}, not ${describe(value)}`);
    return value as number;
  }

  /** true or false. */
  flag(name: string, fallback: boolean): boolean {
    const value = this.#options[name] ?? fallback;
    if (typeof value !== "boolean")
      throw this.#invalid(`${name} must be true or false, not ${describe(value)}`);
    return value;
  }

  /** A non-empty string. */
  text(name: string, fallback: string): string {
    const value = this.#options[name] ?? fallback;
    if (typeof value !== "string" || value === "") {
      throw this.#invalid(`${name} must be a non-empty string, not ${describe(value)}`);
    }
    return value;
  }

  /** One of a few values. */
  oneOf<const T>(name: string, fallback: T, choices: readonly T[]): T {
    const value = this.#options[name] ?? fallback;
    if (!choices.includes(value as T)) {
      const names = choices.map((c) => (typeof c === "string" ? `"${c}"` : String(c))).join(", ");
      throw this.#invalid(`${name} must be one of ${names}, not ${describe(value)}`);
    }
    return value as T;
  }

  /** A function, or undefined. */
  fn<F extends (...args: never[]) => unknown>(name: string): F | undefined {
    const value = this.#options[name];
    if (value !== undefined && typeof value !== "function") {
      throw this.#invalid(`${name} must be a function, not ${describe(value)}`);
    }
    return value as F | undefined;
  }

  /** A CONFIG_INVALID error in this owner's words, for checks that span options. */
  error(message: string): StowageError {
    return this.#invalid(message);
  }

  #invalid(message: string): StowageError {
    return new StowageError("CONFIG_INVALID", `${this.#owner}: ${message}`);
  }
}

// Numbers are safe to echo; any other value might be a secret, so only its kind is named.
function describe(value: unknown): string {
  if (typeof value === "number") return String(value);
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "string" ? "a string" : `a ${typeof value}`;
}
