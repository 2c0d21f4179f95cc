// After `tsc -p tsconfig.cjs.json`: marks the CommonJS build as CommonJS, and gives
// stowage/express-session the CommonJS shape express-session has (`require()` returns the middleware
// factory itself, with its classes on it), which a TypeScript `export default` cannot express.
// Usage: node scripts/finish-cjs.mjs [the CommonJS build's directory, default dist/cjs]
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const dir = process.argv[2] ?? "dist/cjs";
writeFileSync(join(dir, "package.json"), '{ "type": "commonjs" }\n');
writeFileSync(
  join(dir, "express-session/require.js"),
  `"use strict";
const entry = require("./index.js");
module.exports = Object.assign(entry.default, entry);
`,
);
writeFileSync(
  join(dir, "express-session/require.d.ts"),
  `import session from "./index.js";
export = session;
`,
);
