// After `tsc -p tsconfig.cjs.json`: marks dist/cjs as CommonJS, and gives stowage/express-session the
// CommonJS shape express-session has (`require()` returns the middleware factory itself, with its classes
// on it), which a TypeScript `export default` cannot express.
import { writeFileSync } from "node:fs";

writeFileSync("dist/cjs/package.json", '{ "type": "commonjs" }\n');
writeFileSync(
  "dist/cjs/express-session/require.js",
  `"use strict";
const entry = require("./index.js");
module.exports = Object.assign(entry.default, entry);
`,
);
writeFileSync(
  "dist/cjs/express-session/require.d.ts",
  `import session from "./index.js";
export = session;
`,
);
