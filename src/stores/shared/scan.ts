import { OptionChecker } from "../../core/options.js";
import type { ScanOptions } from "../../core/store.js";

/** The page size a `scan` asked for: a whole number of records, 500 when not given. */
export function scanBatch(options: ScanOptions): number {
  return new OptionChecker("scan", options, ["batch"]).count("batch", 500);
}
