import { expect } from "vitest";
import { StowageError, type StowageErrorCode } from "../../src/core/errors.js";
import type { SessionRecord } from "../../src/core/record.js";
import { newId } from "../../src/core/tokens.js";
import type { SessionStore } from "../../src/core/store.js";

export { incrementLoop } from "../helpers/increment.js";

/** A getter for the store under test (created in a beforeAll, so groups read it lazily). */
export type StoreGetter = () => SessionStore;

const HOUR = 3_600_000;

/** A valid record with a fresh random id; `overrides` replace fields one by one. */
export function makeRecord(overrides: Partial<SessionRecord> = {}): SessionRecord {
  const now = Date.now();
  return {
    id: newId(),
    verifier: newId() + newId().slice(0, 21),
    version: 1,
    createdAt: now,
    rotatedAt: now,
    expiresAt: now + 24 * HOUR,
    idleExpiresAt: now + HOUR,
    level: 0,
    loginType: "unspecified",
    attributes: {},
    ...overrides,
  };
}

/** A fresh user id, so tests sharing one store never see each other's users. */
export function newUserId(): string {
  return `user-${newId()}`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Awaits `promise` and asserts it rejected with a StowageError of `code`. */
export async function expectCode(promise: Promise<unknown>, code: StowageErrorCode): Promise<StowageError> {
  let caught: unknown;
  let resolved = false;
  try {
    await promise;
    resolved = true;
  } catch (error) {
    caught = error;
  }
  expect(resolved, `expected rejection with ${code}, but it resolved`).toBe(false);
  expect(caught).toBeInstanceOf(StowageError);
  expect((caught as StowageError).code).toBe(code);
  return caught as StowageError;
}

/** Polls `fn` until it returns a truthy value (or `ms` pass, then fails). */
export async function waitFor<T>(fn: () => T | Promise<T>, ms = 2000, label = "condition"): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() >= deadline) throw new Error(`waitFor: ${label} not met within ${ms} ms`);
    await sleep(10);
  }
}

/** Ids of records, sorted, for order-free comparison. */
export function idsOf(records: { id: string }[]): string[] {
  return records.map((r) => r.id).sort();
}
