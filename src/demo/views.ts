import { levelName } from "../core/record.js";
import { html, type SafeHtml } from "./html.js";

/** A message carried across one redirect. */
export interface Flash {
  kind: "ok" | "warn";
  text: string;
}

/** What the session page shows. */
export interface SessionView {
  user: string;
  idPrefix: string;
  createdAt: number;
  expiresAt: number;
  level: number;
  device: string;
  counter: number;
  csrf: string;
  flash?: Flash | undefined;
}

/** One row of the devices page. */
export interface DeviceRow {
  idPrefix: string;
  device: string;
  createdAt: number;
  current: boolean;
}

/** What the devices page shows. */
export interface DevicesView {
  user: string;
  csrf: string;
  devices: DeviceRow[];
  flash?: Flash | undefined;
}

type Tab = "session" | "devices" | undefined;

function when(ms: number): SafeHtml {
  const date = new Date(ms);
  const text = date.toLocaleString("en-GB", {
    dateStyle: "medium",
    timeStyle: "short",
    timeZone: "UTC",
  });
  // The server's clock is the one shown, so the zone is said: no reader has to guess whose time it is.
  return html`<time datetime="${date.toISOString()}">${text} UTC</time>`;
}

function csrfField(csrf: string): SafeHtml {
  return html`<input type="hidden" name="csrf" value="${csrf}">`;
}

function flashBox(flash: Flash | undefined): SafeHtml {
  return flash
    ? html`<div class="flash ${flash.kind === "ok" ? "ok" : ""}" role="status">${flash.text}</div>`
    : html``;
}

function layout(title: string, tab: Tab, body: SafeHtml): string {
  const link = (href: string, name: Tab, label: string) =>
    html`<a href="${href}"${name === tab ? html` aria-current="page"` : ""}>${label}</a>`;
  const nav = tab
    ? html`<nav>${link("/", "session", "Session")}${link("/devices", "devices", "Devices")}</nav>`
    : "";
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · stowage demo</title>
<link rel="stylesheet" href="/style.css">
</head>
<body>
<main>
<header class="top"><a class="brand" href="/">stow<span>age</span></a>${nav}</header>
${body}
<footer>Sessions by stowage, kept in the store this server was started with.</footer>
</main>
</body>
</html>
`.value;
}

/** The sign-in form. */
export function signInPage(csrf: string, flash?: Flash): string {
  return layout(
    "Sign in",
    undefined,
    html`${flashBox(flash)}<section class="card">
<h1>Sign in</h1>
<p class="muted">Any name will do: this demo has no passwords. Sign in from two browsers with the same
name to see both devices.</p>
<form class="stack" method="post" action="/login">
${csrfField(csrf)}
<label for="name">Your name</label>
<input type="text" id="name" name="name" maxlength="1024" required autofocus autocomplete="username">
<button type="submit">Sign in</button>
</form>
</section>`,
  );
}

/** The current session: who, since when, until when, the counter, and the sign-out buttons. */
export function sessionPage(v: SessionView): string {
  return layout(
    "Your session",
    "session",
    html`${flashBox(v.flash)}<section class="card">
<h1>Hello, ${v.user}</h1>
<p class="muted">You are signed in on ${v.device}.</p>
<dl class="facts">
<dt>Session</dt><dd><code>${v.idPrefix}</code></dd>
<dt>Created</dt><dd>${when(v.createdAt)}</dd>
<dt>Expires</dt><dd>${when(v.expiresAt)}</dd>
<dt>Permission</dt><dd>${levelName(v.level)} (${v.level})</dd>
</dl>
</section>
<section class="card counter">
<div><h2>Counter</h2><div class="value" id="counter">${v.counter}</div></div>
<form method="post" action="/counter">${csrfField(v.csrf)}<button type="submit">+1</button></form>
</section>
<section class="card live" id="live" data-state="connecting">
<h2>Live</h2>
<p class="live-state" id="live-state" role="status">Connecting…</p>
<ul class="live-log" id="live-log"></ul>
</section>
<script type="module" src="/live.js"></script>
${signOutCard(v.csrf)}`,
  );
}

/** The signed-in user's live sessions, each with a Revoke button except this one. */
export function devicesPage(v: DevicesView): string {
  const rows = v.devices.map(
    (d) => html`<li>
<div><div class="device-name">${d.device}${d.current ? html`<span class="badge">This device</span>` : ""}</div>
<div class="muted small">Signed in ${when(d.createdAt)} · <code>${d.idPrefix}</code></div></div>
${
  d.current
    ? ""
    : html`<form method="post" action="/devices/revoke">${csrfField(v.csrf)}
<input type="hidden" name="id" value="${d.idPrefix}">
<button type="submit" class="danger">Revoke</button></form>`
}
</li>`,
  );
  const count = v.devices.length === 1 ? "1 device" : `${v.devices.length} devices`;
  return layout(
    "Your devices",
    "devices",
    html`${flashBox(v.flash)}<section class="card">
<h1>Your devices</h1>
<p class="muted">${v.user} is signed in on ${count}. Revoking a device signs it out at its next request.</p>
<ul class="devices">${rows}</ul>
</section>
${signOutCard(v.csrf)}`,
  );
}

function signOutCard(csrf: string): SafeHtml {
  return html`<section class="card">
<h2>Sign out</h2>
<div class="actions">
<form method="post" action="/logout">${csrfField(csrf)}<button type="submit" class="secondary">Sign out</button></form>
<form method="post" action="/logout-all">${csrfField(csrf)}<button type="submit" class="danger">Sign out everywhere</button></form>
</div>
</section>`;
}

/** An error page: 403, 404, 413, 415, 503 and friends. */
export function errorPage(status: number, title: string, message: string): string {
  return layout(
    title,
    undefined,
    html`<section class="card">
<div class="error-code">${status}</div>
<h1>${title}</h1>
<p class="muted">${message}</p>
<p><a href="/">Back to the start page</a></p>
</section>`,
  );
}
