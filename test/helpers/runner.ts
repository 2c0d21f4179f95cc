import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ConformanceRunner } from "../../src/conformance/index.js";

/** vitest's functions, as `runStoreConformance` takes them. */
export const vitest: ConformanceRunner = { describe, it, beforeAll, afterAll, expect };
