/** The demo's stylesheet, served at /style.css. */
export const STYLE = `
:root {
  --bg: #f4f5f7; --card: #fff; --text: #1d2330; --muted: #5f6b7a; --line: #e3e6eb;
  --accent: #2f5bd3; --accent-hover: #2449ad; --danger: #c0392b; --danger-hover: #992d22;
  --ok-bg: #e8f5ec; --ok-text: #1e6b3a; --warn-bg: #fdf0e6; --warn-text: #8a4a12;
  color-scheme: light;
}
* { box-sizing: border-box; }
body {
  margin: 0; min-height: 100vh; background: var(--bg); color: var(--text);
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  display: flex; flex-direction: column; align-items: center; padding: 48px 16px;
}
main { width: 100%; max-width: 560px; overflow-wrap: anywhere; }
header.top { display: flex; align-items: center; justify-content: space-between; min-height: 36px; margin-bottom: 20px; }
a { color: var(--accent); }
a:hover { color: var(--accent-hover); }
.brand { font-weight: 700; font-size: 20px; letter-spacing: -0.01em; color: var(--text); text-decoration: none; }
.brand span { color: var(--accent); }
nav { display: flex; gap: 4px; }
nav a {
  color: var(--muted); text-decoration: none; padding: 6px 12px; border-radius: 8px; font-size: 15px;
}
nav a:hover { background: #e8ebf0; color: var(--text); }
nav a[aria-current="page"] { background: var(--card); color: var(--text); box-shadow: 0 1px 2px rgba(16,24,40,.08); }
.card {
  background: var(--card); border: 1px solid var(--line); border-radius: 14px; padding: 28px;
  box-shadow: 0 1px 3px rgba(16,24,40,.06), 0 8px 24px rgba(16,24,40,.04); margin-bottom: 20px;
}
h1 { font-size: 24px; line-height: 1.25; margin: 0 0 6px; letter-spacing: -0.01em; }
h2 { font-size: 17px; margin: 0 0 14px; }
p { margin: 0 0 16px; }
.muted { color: var(--muted); }
.small { font-size: 14px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 8px 20px; margin: 20px 0 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; font-variant-numeric: tabular-nums; }
code { font: 14px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: #f0f2f5;
  padding: 2px 6px; border-radius: 6px; }
form { margin: 0; }
form.stack { display: flex; flex-direction: column; gap: 12px; }
form.row { display: flex; gap: 10px; }
label { font-weight: 600; font-size: 15px; }
input[type="text"] {
  font: inherit; padding: 10px 12px; border: 1px solid #cdd3dc; border-radius: 9px; width: 100%;
  background: #fff; color: inherit;
}
input[type="text"]:focus { outline: 3px solid rgba(47,91,211,.25); border-color: var(--accent); }
button {
  font: inherit; font-weight: 600; font-size: 15px; cursor: pointer; border-radius: 9px;
  padding: 9px 16px; border: 1px solid transparent; background: var(--accent); color: #fff; white-space: nowrap;
}
button:hover { background: var(--accent-hover); }
button:focus-visible { outline: 3px solid rgba(47,91,211,.35); outline-offset: 2px; }
button.secondary { background: #fff; color: var(--text); border-color: #cdd3dc; }
button.secondary:hover { background: #f4f5f7; }
button.danger { background: #fff; color: var(--danger); border-color: #e9b8b2; }
button.danger:hover { background: var(--danger); color: #fff; border-color: var(--danger); }
.counter { display: flex; align-items: center; justify-content: space-between; gap: 16px; }
.counter .value { font-size: 40px; font-weight: 700; font-variant-numeric: tabular-nums; line-height: 1; }
.actions { display: flex; gap: 10px; flex-wrap: wrap; }
ul.devices { list-style: none; margin: 0; padding: 0; }
ul.devices li {
  display: flex; align-items: center; justify-content: space-between; gap: 16px;
  padding: 14px 0; border-top: 1px solid var(--line);
}
ul.devices li:first-child { border-top: 0; padding-top: 0; }
ul.devices li:last-child { padding-bottom: 0; }
.device-name { font-weight: 600; }
.badge {
  display: inline-block; font-size: 12px; font-weight: 600; padding: 2px 8px; border-radius: 999px;
  background: var(--ok-bg); color: var(--ok-text); margin-left: 8px; vertical-align: 1px;
}
.flash { padding: 12px 16px; border-radius: 10px; margin-bottom: 20px; background: var(--warn-bg);
  color: var(--warn-text); border: 1px solid #f3d5bd; }
.flash.ok { background: var(--ok-bg); color: var(--ok-text); border-color: #c3e3cd; }
footer { color: var(--muted); font-size: 13px; text-align: center; margin-top: 8px; }
.live-state { margin: 0 0 8px; font-weight: 600; overflow-wrap: anywhere; }
.live-state::before { content: ""; display: inline-block; width: 10px; height: 10px; border-radius: 50%;
  margin-right: 8px; background: var(--muted); vertical-align: 0; }
.live[data-state="connected"] .live-state::before, .live[data-state="resumed"] .live-state::before {
  background: #2f9e55; }
.live[data-state="reconnecting"] .live-state::before { background: #d98a1c; }
.live[data-state="closed"] .live-state::before { background: var(--accent); }
.live-log { margin: 0; padding: 0; list-style: none; color: var(--muted); font-size: 14px; max-height: 180px;
  overflow-y: auto; overflow-wrap: anywhere; }
.error-code { font-size: 48px; font-weight: 800; color: var(--accent); line-height: 1; margin-bottom: 10px; }
`;
