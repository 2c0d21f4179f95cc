import type { OptionChecker } from "../../core/options.js";

/**
 * Parses a store's connection URL option, or throws CONFIG_INVALID naming the option and the shape
 * expected. Drivers' own parse errors may quote the URL, password included; these never do.
 */
export function parseStoreUrl(
  check: OptionChecker,
  option: string,
  url: unknown,
  shape: { protocols: readonly string[]; expected: string },
): URL {
  let parsed: URL;
  try {
    if (typeof url !== "string") throw new TypeError();
    parsed = new URL(url);
  } catch {
    throw check.error(`${option} is not a valid URL (expected ${shape.expected})`);
  }
  if (!shape.protocols.includes(parsed.protocol)) {
    throw check.error(`${option} must start with ${shape.protocols.map((p) => `${p}//`).join(" or ")}`);
  }
  return parsed;
}
