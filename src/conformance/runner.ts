/** The assertions the suite makes, as jest-style matchers have them. */
export interface ConformanceAssertions {
  toBe(expected: unknown): void;
  toEqual(expected: unknown): void;
  toBeUndefined(): void;
  toBeDefined(): void;
  toBeNull(): void;
  toBeTruthy(): void;
  toBeFalsy(): void;
  toHaveLength(length: number): void;
  toContain(item: unknown): void;
  toMatch(pattern: RegExp | string): void;
  toBeGreaterThan(n: number): void;
  toBeGreaterThanOrEqual(n: number): void;
  toBeLessThan(n: number): void;
  toBeLessThanOrEqual(n: number): void;
  toBeInstanceOf(type: abstract new (...args: never[]) => unknown): void;
  toHaveProperty(name: string): void;
}

/** What a jest-style `expect(value)` returns: the assertions, and the same negated under `not`. */
export type ConformanceMatchers = ConformanceAssertions & { readonly not: ConformanceAssertions };

/**
 * The test functions the suite registers its tests with: vitest's and jest's as they are; for node:test
 * `{ describe, it, beforeAll: before, afterAll: after }` from `node:test` with `expect` from the `expect`
 * package (jest's, published on its own).
 */
export interface ConformanceRunner {
  /** Groups tests. */
  describe(name: string, fn: () => void): unknown;
  /** One test; it fails by throwing or rejecting. */
  it(name: string, fn: () => void | Promise<void>): unknown;
  /** Runs once before the tests of the enclosing group. */
  beforeAll(fn: () => void | Promise<void>): unknown;
  /** Runs once after them. */
  afterAll(fn: () => void | Promise<void>): unknown;
  /** A jest-compatible `expect`; a second argument (a message) may be ignored. */
  expect(actual: unknown, message?: string): ConformanceMatchers;
}
