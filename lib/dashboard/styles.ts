/** The dashboard's stylesheet, served as /dashboard/app.css. */
export const dashboardStyles = `
:root {
  --ink: #1d2330; --muted: #667085; --line: #e4e7ec; --panel: #ffffff; --page: #f5f6f8;
  --spent: #2e62d9; --held: #9db8f2; --high: #d98e04; --full: #c8322f; --bar-bg: #eef1f6;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: var(--ink); background: var(--page);
}
* { box-sizing: border-box; }
body { margin: 0; }
[hidden] { display: none !important; }
h1 { font-size: 18px; margin: 0; letter-spacing: 0.02em; }
h2 { font-size: 13px; margin: 0 0 10px; color: var(--muted); font-weight: 600; text-transform: uppercase; letter-spacing: 0.04em; }
h2 .note { text-transform: none; letter-spacing: 0; font-weight: 400; margin-left: 8px; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
button { font: inherit; padding: 5px 12px; border: 1px solid var(--line); border-radius: 6px; background: #fff; cursor: pointer; }
button[type=submit] { background: var(--spent); border-color: var(--spent); color: #fff; }
.top { display: flex; align-items: center; gap: 14px; padding: 12px 24px; background: var(--panel); border-bottom: 1px solid var(--line); }
.top .spacer { flex: 1; }
#status { color: var(--muted); }
.sign-in { max-width: 440px; margin: 64px auto; padding: 24px; background: var(--panel); border: 1px solid var(--line); border-radius: 10px; }
.sign-in label { display: block; font-weight: 600; margin: 12px 0 4px; }
.sign-in input { width: 100%; padding: 7px 9px; font: inherit; border: 1px solid var(--line); border-radius: 6px; margin-bottom: 12px; }
.error { color: var(--full); min-height: 1.4em; }
main { padding: 18px 24px 32px; display: grid; gap: 16px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 12px; }
.card, .panel { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px; }
.card h2 { margin-bottom: 4px; }
.big { font-size: 24px; font-weight: 650; margin: 0; font-variant-numeric: tabular-nums; }
.sub { margin: 2px 0 0; color: var(--muted); font-size: 12px; }
.columns { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; }
table { width: 100%; border-collapse: collapse; }
th { text-align: left; font-size: 12px; color: var(--muted); font-weight: 600; padding: 4px 8px; border-bottom: 1px solid var(--line); }
td { padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: middle; }
tr:last-child td { border-bottom: 0; }
tr.empty td { color: var(--muted); font-style: italic; }
tr.window td { color: var(--muted); font-size: 13px; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.scope { word-break: break-all; }
.kind { display: inline-block; font-size: 11px; padding: 0 6px; border-radius: 4px; background: var(--bar-bg); color: var(--muted); }
th.util-head { width: 34%; }
.util { display: flex; align-items: center; gap: 8px; }
.bar { flex: 1; display: flex; height: 10px; background: var(--bar-bg); border-radius: 5px; overflow: hidden; min-width: 80px; }
.bar .spent { background: var(--spent); }
.bar .held { background: var(--held); }
.bar.high .spent { background: var(--high); }
.bar.full .spent { background: var(--full); }
.util-text { font-size: 12px; color: var(--muted); white-space: nowrap; width: 160px; flex: none; }
.util-none { color: var(--muted); font-size: 12px; }
.chips { list-style: none; display: flex; flex-wrap: wrap; gap: 8px; margin: 0 0 10px; padding: 0; }
.chips li { background: var(--bar-bg); border-radius: 12px; padding: 2px 10px; }
#chart { width: 100%; height: auto; display: block; }
#chart .hour { fill: var(--spent); }
#chart .hour:hover { fill: var(--high); }
#chart .axis { stroke: #98a2b3; stroke-width: 1; }
#chart .grid { stroke: var(--line); stroke-dasharray: 4 4; }
#chart .label { fill: var(--muted); font-size: 11px; }
`;
