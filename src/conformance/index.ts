import type { SessionStore } from "../core/store.js";
import { concurrencyTests } from "./concurrency.js";
import { deltaTests } from "./deltas.js";
import { eventTests } from "./events.js";
import { expiryTests } from "./expiry.js";
import type { StoreGetter } from "./helpers.js";
import { lockTests } from "./locks.js";
import { outboxTests } from "./outbox.js";
import { recordTests } from "./records.js";
import { renameConsumeTests } from "./rename-consume.js";
import type { ConformanceRunner } from "./runner.js";
import { scanTests } from "./scan.js";
import { ownAttributeTests, renameRaceTests, sessionTests, wellFormedTextTests } from "./sessions.js";
import { userIndexTests } from "./user-index.js";
import { valueTests } from "./values.js";

export {
  expectCode,
  idsOf,
  incrementLoop,
  makeRecord,
  newUserId,
  type StoreGetter,
  sleep,
  thrownCode,
  waitFor,
} from "./helpers.js";
export type { ConformanceAssertions, ConformanceMatchers, ConformanceRunner } from "./runner.js";

/** The groups of the suite, by name. */
export const conformanceGroups = {
  records: recordTests,
  deltas: deltaTests,
  "rename-consume": renameConsumeTests,
  expiry: expiryTests,
  "user-index": userIndexTests,
  locks: lockTests,
  events: eventTests,
  outbox: outboxTests,
  scan: scanTests,
  values: valueTests,
  concurrency: concurrencyTests,
  sessions: sessionTests,
  "rename-races": renameRaceTests,
  "own-attributes": ownAttributeTests,
  "well-formed-text": wellFormedTextTests,
} satisfies Record<string, (runner: ConformanceRunner, getStore: StoreGetter) => void>;

/** Name of one group of the suite. */
export type ConformanceGroup = keyof typeof conformanceGroups;

/** Options for `runStoreConformance`. */
export interface ConformanceOptions {
  /** Groups not to run (for a store under construction; a finished store runs them all). @default [] */
  skip?: ConformanceGroup[];
}

/**
 * Registers the store conformance suite with the test functions of your runner (vitest, jest, or
 * node:test with the `expect` package). One store is made for the whole suite and closed after it;
 * every test uses fresh random ids and user ids, so tests never depend on each other's data.
 *
 * @example
 * import { afterAll, beforeAll, describe, expect, it } from "vitest";
 * import { runStoreConformance } from "stowage/conformance";
 * runStoreConformance({ describe, it, beforeAll, afterAll, expect }, "my-store", () => new MyStore());
 */
export function runStoreConformance(
  runner: ConformanceRunner,
  name: string,
  makeStore: () => SessionStore | Promise<SessionStore>,
  options: ConformanceOptions = {},
): void {
  // vitest's expect takes a message as a second argument; jest's refuses one. Messages go only to an
  // expect that declares two parameters.
  const expect = runner.expect;
  const tests: ConformanceRunner =
    expect.length >= 2 ? runner : { ...runner, expect: (actual: unknown) => expect(actual) };
  runner.describe(`${name} conformance`, () => {
    let store: SessionStore | undefined;
    runner.beforeAll(async () => {
      store = await makeStore();
    });
    runner.afterAll(async () => {
      await store?.close();
    });
    const getStore: StoreGetter = () => {
      if (!store) throw new Error("store not created (did makeStore fail?)");
      return store;
    };
    const skip = new Set<string>(options.skip ?? []);
    for (const [group, register] of Object.entries(conformanceGroups)) {
      if (!skip.has(group)) runner.describe(group, () => register(tests, getStore));
    }
  });
}
