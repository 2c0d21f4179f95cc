import { DEFAULT_REDIS_URL } from "../setup/services.js";

/** The Redis the tests use: the machine's own, or the one test/setup/services.ts started. */
export const REDIS_URL = process.env.STOWAGE_TEST_REDIS_URL ?? DEFAULT_REDIS_URL;
