import assert from "node:assert/strict";
import { StowageError, type StowageErrorCode } from "../core/errors.js";
import type { SessionRecord } from "../core/record.js";
import type { SessionStore } from "../core/store.js";
import { newId } from "../core/tokens.js";

export { incrementLoop } from "./increment.js";

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

/** Awaits `promise` and asserts it rejected with a StowageError of `code`; returns the error. */
export async function expectCode(promise: Promise<unknown>, code: StowageErrorCode): Promise<StowageError> {
  let caught: unknown;
  let resolved = false;
  try {
    await promise;
    resolved = true;
  } catch (error) {
    caught = error;
  }
  assert.ok(!resolved, `expected rejection with ${code}, but it resolved`);
  assert.ok(caught instanceof StowageError, `expected a StowageError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code);
  return caught;
}

/** The StowageError code `fn` throws synchronously, or "nothing thrown". */
export function thrownCode(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    return error instanceof StowageError ? error.code : `not a StowageError: ${String(error)}`;
  }
  return "nothing thrown";
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
