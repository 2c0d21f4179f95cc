import { once } from "node:events";
import { createServer, type Server } from "node:http";
import { type AddressInfo, connect } from "node:net";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rawHeader } from "../../src/http/node.js";

// The names the node adapter reads, in the spellings clients send.
const NAMES = [
  "cookie",
  "Cookie",
  "COOKIE",
  "authorization",
  "Authorization",
  "x-forwarded-proto",
  "X-Token",
];

let server: Server;
let port: number;
beforeAll(async () => {
  // Answers what node made of each header next to what rawHeader makes of it.
  server = createServer((req, res) => {
    const answer: Record<string, [unknown, unknown]> = {};
    for (const name of ["cookie", "authorization", "x-forwarded-proto", "x-token"]) {
      answer[name] = [rawHeader(req, name), req.headers[name]];
    }
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify(answer));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((done) => server.close(done));
});

/** Sends one request with exactly these header lines and returns the parsed JSON body. */
async function exchange(lines: [string, string][]): Promise<Record<string, [unknown, unknown]>> {
  const socket = connect(port, "127.0.0.1");
  const head = lines.map(([name, value]) => `${name}: ${value}\r\n`).join("");
  socket.end(`GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${head}\r\n`);
  const chunks: Buffer[] = [];
  for await (const chunk of socket) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString("utf8");
  return JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4));
}

describe("rawHeader", () => {
  it("reads each header as node's req.headers does, repeated lines included", async () => {
    const value = fc.string({ unit: fc.constantFrom(..."ab=; ,.09") }).map((v) => v.trim());
    const line = fc.tuple(fc.constantFrom(...NAMES), value);
    await fc.assert(
      fc.asyncProperty(fc.array(line, { maxLength: 6 }), async (lines) => {
        const answer = await exchange(lines);
        for (const [name, [ours, node]] of Object.entries(answer)) expect(ours, name).toEqual(node);
      }),
      { numRuns: 150 },
    );
  });
});
