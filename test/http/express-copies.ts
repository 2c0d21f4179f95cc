import { createRequire } from "node:module";
import { dirname } from "node:path";
import type express from "express";

/**
 * A copy of express of its own, as a second install of it in node_modules would be: its modules evaluated
 * anew, so its shared response object is one no middleware has hooked yet.
 */
export function freshExpress(name: "express" | "express4"): typeof express {
  const require = createRequire(import.meta.url);
  const root = dirname(require.resolve(`${name}/package.json`));
  for (const key of Object.keys(require.cache)) {
    if (key.startsWith(`${root}/`) && !key.slice(root.length).includes("/node_modules/"))
      delete require.cache[key];
  }
  return require(name) as typeof express;
}

/**
 * Middleware that wraps `res.end` as a logger or compression would, and records in `calls`, as
 * "label:cookie" or "label:no cookie", whether the Set-Cookie was on the response when its wrapper ran.
 */
export function endWrapper(calls: string[]): (label: string) => express.RequestHandler {
  return (label) => (_req, res, next) => {
    const end = res.end;
    res.end = function (this: express.Response, ...args: unknown[]) {
      calls.push(`${label}:${res.getHeader("set-cookie") === undefined ? "no cookie" : "cookie"}`);
      return (end as (...a: unknown[]) => express.Response).apply(this, args);
    } as express.Response["end"];
    next();
  };
}
