import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { runStoreConformance } from "stowage/conformance";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MapStore } from "./map-store.js";

// An outsider's store through the published suite, as its author would run it with vitest…
runStoreConformance(
  { describe, it, beforeAll, afterAll, expect },
  "outsider map store",
  () => new MapStore(),
);

// …and with node:test and jest's standalone `expect`, in a process of its own.
describe("the published suite under node:test", () => {
  it("runs every group on the outsider store and passes", async () => {
    const file = fileURLToPath(new URL("./node-test-run.ts", import.meta.url));
    const output = await new Promise<string>((resolve, reject) => {
      execFile(
        process.execPath,
        ["--import", "tsx", "--test", "--test-reporter=spec", file],
        { timeout: 120_000 },
        (error, stdout, stderr) => (error ? reject(new Error(`${stdout}\n${stderr}`)) : resolve(stdout)),
      );
    });
    const passed = Number(/ℹ pass (\d+)/.exec(output)?.[1]);
    const failed = Number(/ℹ fail (\d+)/.exec(output)?.[1]);
    expect(failed).toBe(0);
    expect(passed).toBeGreaterThan(80);
  });
});
