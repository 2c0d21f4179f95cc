import { readFileSync } from "node:fs";
import type { Server } from "node:http";
import { fileURLToPath } from "node:url";
import { createConnectionServer, type WsConnectionServer } from "../connections/ws.js";
import type { Sessions } from "../core/manager.js";
import type { DemoAttributes } from "./attributes.js";
import { asset, type Reply } from "./respond.js";

/** What the pages' live panel needs from the server: pushes to a user's panels, and ending a device's. */
export interface LiveHooks {
  /** Sends a value to every live panel of the user. */
  notify(userId: string, value: { counter: number }): Promise<void>;
  /** Ends the connection sessions a device (an HTTP session) opened: its panels close with `revoked`. */
  endDevice(userId: string, deviceId: string): Promise<void>;
  /** The browser modules the panel loads, by path. */
  assets: Record<string, () => Promise<Reply>>;
}

/**
 * The live panel's WebSocket endpoint at /live on the demo's servers. A panel's connection session
 * belongs to the signed-in user and remembers the HTTP session (device) that opened it, so revoking that
 * device, or signing it out, closes its panels too.
 */
export function attachLive(
  sessions: Sessions<DemoAttributes>,
  server: Server,
): { live: WsConnectionServer<DemoAttributes>; hooks: LiveHooks } {
  const live = createConnectionServer<DemoAttributes>({
    sessions,
    server,
    path: "/live",
    heartbeatMs: 10_000,
    authenticate: (_request, http) =>
      http?.userId === undefined ? null : { userId: http.userId, attributes: { opener: http.id } },
  });
  const panelsOf = async (userId: string, device?: string) =>
    (await sessions.listForUser(userId)).filter(
      (info) => info.kind === "connection" && (device === undefined || info.attributes.opener === device),
    );
  const hooks: LiveHooks = {
    async notify(userId, value) {
      const panels = await panelsOf(userId);
      await Promise.allSettled(panels.map((panel) => live.send(panel.id, value)));
    },
    async endDevice(userId, deviceId) {
      const panels = await panelsOf(userId, deviceId);
      await Promise.all(panels.map((panel) => sessions.end(panel.id)));
    },
    assets: {
      "/live.js": async () => asset(JS, PANEL_SCRIPT),
      "/assets/client/index.js": built("client/index.js"),
      "/assets/protocol/frames.js": built("protocol/frames.js"),
      "/assets/protocol/reasons.js": built("protocol/reasons.js"),
    },
  };
  return { live, hooks };
}

const JS = "text/javascript; charset=utf-8";

/**
 * A module of the built client, read once. The demo runs from dist/ (npm start); run from src/ (the
 * tests, after the build), the built files are under dist/ beside it.
 */
function built(file: string): () => Promise<Reply> {
  let text: string | undefined;
  return async () => {
    text ??= readBuilt(file);
    return asset(JS, text);
  };
}

function readBuilt(file: string): string {
  for (const base of ["../", "../../dist/"]) {
    try {
      return readFileSync(fileURLToPath(new URL(base + file, import.meta.url)), "utf8").replace(
        /\n\/\/# sourceMappingURL=.*$/,
        "",
      );
    } catch {
      // Not there: the next place.
    }
  }
  throw new Error(`the demo needs the built client (${file}): run npm run build`);
}

/** The panel's own script: connects, shows the state and each push, and why it stopped. */
const PANEL_SCRIPT = `import { connect } from "/assets/client/index.js";

const panel = document.getElementById("live");
const state = document.getElementById("live-state");
const log = document.getElementById("live-log");
const counter = document.getElementById("counter");

function show(kind, text) {
  panel.dataset.state = kind;
  state.textContent = text;
}

function note(text) {
  const item = document.createElement("li");
  item.textContent = new Date().toLocaleTimeString([], { timeZoneName: "short" }) + " — " + text;
  log.prepend(item);
  while (log.children.length > 20) log.lastElementChild.remove();
}

const scheme = location.protocol === "https:" ? "wss" : "ws";
const conn = connect(scheme + "://" + location.host + "/live", { heartbeatMs: 4000, maxDelayMs: 2000 });
conn.on("open", ({ resumed, gap }) => {
  show(resumed ? "resumed" : "connected", resumed ? "Resumed: same live session, nothing missed" : "Connected");
  if (gap) note("Some updates were too old to replay (" + (gap.through - gap.after) + " skipped)");
});
conn.on("reconnecting", ({ attempt, delayMs, reason }) => {
  show("reconnecting", "Reconnecting (" + reason + "), attempt " + attempt + " in " + delayMs + " ms");
});
conn.on("message", (value) => {
  if (value && typeof value.counter === "number") {
    counter.textContent = String(value.counter);
    note("Counter is now " + value.counter);
  }
});
conn.on("closed", ({ reason }) => {
  const why = {
    revoked: "This device was signed out from another device.",
    expired: "The live session expired. Reload the page to start a new one.",
    refused: "Sign in to use the live panel.",
  };
  show("closed", "Closed: " + reason + ". " + (why[reason] ?? ""));
});
`;
