// The migrator dashboard: renders GET /api/v1/progress (docs/dashboard.md) and polls it every
// second. No build step, no dependency but uPlot (static/uPlot.iife.min.js). Text from the API
// is set with textContent only, never parsed as HTML.
"use strict";

const POLL_MS = 1000;
const $ = (id) => document.getElementById(id);

function num(value, digits = 0) {
  if (value === null || value === undefined) return "-";
  return Number(value).toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function bytes(value) {
  if (value === null || value === undefined) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = Number(value), i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v.toFixed(0) : v.toFixed(1)) + " " + units[i];
}

function seconds(value) {
  if (value === null || value === undefined) return "-";
  const v = Number(value);
  if (v < 60) return v.toFixed(v < 10 ? 2 : 1) + " s";
  if (v < 3600) return Math.floor(v / 60) + " min " + Math.round(v % 60) + " s";
  return Math.floor(v / 3600) + " h " + Math.round((v % 3600) / 60) + " min";
}

function setText(id, text) { $(id).textContent = text; }

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const [text, cls] of cells) tr.appendChild(el("td", text, cls));
  return tr;
}

function renderRun(p) {
  const run = p.run;
  setText("command", p.command);
  setText("plan", run.plan || "");
  setText("run-id", run.run_id ? run.run_id.slice(0, 8) : "-");
  const status = $("status");
  status.textContent = run.status;
  status.className = "badge " + ({ failed: "bad", stopped: "done", running: "ok" }[run.status] || "");
  setText("phase", run.phase || "-");
  setText("uptime", seconds(run.uptime_seconds));
  setText("updated", p.ts.slice(11, 19) + " UTC");
  document.title = "migrator · " + (run.plan || p.command) + " · " + run.status;
}

function renderSnapshot(s) {
  const body = $("snapshot").querySelector("tbody");
  body.replaceChildren();
  for (const c of s.collections) {
    const tr = row([[c.collection], [c.table], [num(c.documents), "n"], [num(c.estimated_rows), "n"]]);
    const cell = el("td");
    const bar = el("div", undefined, "bar");
    const fill = el("div");
    fill.style.width = (c.percent || 0) + "%";
    bar.appendChild(fill);
    cell.append(bar, el("span", c.percent === null ? "-" : c.percent.toFixed(1) + " %", "pct"));
    tr.appendChild(cell);
    tr.append(el("td", num(c.rows), "n"), el("td", c.chunks_done + " / " + c.chunks, "n"), el("td", num(c.skipped), "n"));
    tr.dataset.collection = c.collection;
    tr.dataset.documents = c.documents;
    body.appendChild(tr);
  }
  if (!s.collections.length) body.appendChild(row([["no snapshot in this process", "sub"]]));
  setText("snapshot-total", s.collections.length
    ? num(s.documents) + " of ~" + num(s.estimated_rows) + " documents" + (s.percent === null ? "" : " (" + s.percent.toFixed(1) + " %)")
    : "");
  $("snapshot-total").dataset.documents = s.documents;
}

function renderCdc(p) {
  const c = p.cdc, b = p.budgets;
  setText("lag-seconds", c ? seconds(c.lag_seconds) : "-");
  setText("lag-bytes", c ? bytes(c.lag_bytes) : "-");
  setText("retained", c ? bytes(c.retained_wal_bytes) : "-");
  setText("change-log", c ? c.change_log : "change log");
  const budget = b.max_retained_wal_bytes;
  const share = c && budget ? Math.min(100, 100 * c.retained_wal_bytes / budget) : 0;
  $("retained-bar").style.width = share + "%";
  $("retained-bar").className = share > 80 ? "bad" : "";
  setText("retained-budget", !budget ? "" : "budget " + bytes(budget) + (c ? " (" + share.toFixed(1) + " %)" : ""));
  setText("changes", c ? num(c.changes) : "-");
  $("changes").dataset.value = c ? c.changes : 0;
  setText("transactions", c ? num(c.transactions) + " transactions" : "");
  setText("changes-rate", num(p.throughput.changes_per_second, 1));
  setText("documents-rate", num(p.throughput.documents_per_second, 1));
  setText("caught-up", !c ? "not started" : c.caught_up ? "caught up" : "replaying"
    + (b.max_lag_seconds ? " (lag budget " + seconds(b.max_lag_seconds) + ")" : ""));
  setText("position", c ? "applied " + c.stream + " position " + c.position : "");
  const t = p.throttle;
  setText("throttle", t.throttled ? "throttled: " + t.reasons.join(", ") : t.total_seconds ? "throttled " + seconds(t.total_seconds) + " in all" : "");
  const r = p.reverse;
  setText("reverse", r ? "reverse sync: " + num(r.documents) + " documents back, lag " + seconds(r.lag_seconds) : "");
}

function renderVerify(v) {
  const body = $("mismatches").querySelector("tbody");
  body.replaceChildren();
  const r = v.report;
  if (v.running) {
    setText("verify-verdict", "running");
    setText("verify-counts", num(v.checked) + " checked, " + num(v.equal) + " equal, " + num(v.differing) + " to recheck");
  } else if (r) {
    setText("verify-verdict", r.verdict + " (score " + r.score + ")");
    setText("verify-counts", num(r.checked) + " checked, " + num(r.equal) + " equal, " + num(r.mismatched)
      + " mismatched, " + num(r.missing) + " missing, " + num(r.extra) + " extra, " + num(r.unsettled)
      + " unsettled" + (r.repaired ? ", " + num(r.repaired) + " repaired" : "") + " · " + v.ts);
  }
  $("verify-verdict").className = r && !v.running ? (r.verdict === "equal" ? "ok" : "bad") : "";
  for (const m of (r && r.mismatches) || []) {
    const diffs = (m.diffs || []).map((d) => Object.values(d).join(" ")).join("; ") || m.reason || "";
    body.appendChild(row([[m.collection], [JSON.stringify(m.id)], [m.kind], [diffs]]));
  }
}

function renderSteps(p) {
  const cut = p.cutover, back = p.rollback, done = p.finish;
  setText("freeze", cut.freeze_ms === null ? "-" : num(cut.freeze_ms) + " ms");
  setText("freeze-budget", p.budgets.max_write_freeze_seconds ? "(budget " + num(p.budgets.max_write_freeze_seconds * 1000) + " ms)" : "");
  setText("freeze-back", back.freeze_ms === null ? "-" : num(back.freeze_ms) + " ms");
  const list = $("steps");
  list.replaceChildren();
  const steps = cut.steps.map((s) => [s.ts, "cutover " + s.step, s.message])
    .concat(cut.abandoned.map((a) => [a.ts, "cutover abandoned", "attempt " + a.attempt + ": " + a.reason]))
    .concat(back.steps.map((s) => [s.ts, "rollback " + s.step, s.outcome + (s.description ? ": " + s.description : "")]))
    .concat(done.steps.map((s) => [s.ts, "finish " + s.step, s.outcome + (s.description ? ": " + s.description : "")]))
    .sort((a, b) => (a[0] < b[0] ? -1 : 1));
  for (const [ts, what, text] of steps) {
    const li = el("li");
    li.append(el("span", ts.slice(11, 23) + " ", "sub"), el("b", what), document.createTextNode(" " + text));
    list.appendChild(li);
  }
  if (!steps.length) list.appendChild(el("li", "none in this process", "sub"));
}

function renderMessages(messages) {
  const list = $("messages");
  list.replaceChildren();
  for (const m of messages.slice().reverse()) {
    const li = el("li", undefined, m.level);
    li.append(el("span", m.ts.slice(11, 23) + " ", "sub"), el("b", m.level + " " + m.kind),
      document.createTextNode((m.phase ? " [" + m.phase + "] " : " ") + m.message + (m.hint ? " (" + m.hint + ")" : "")));
    list.appendChild(li);
  }
  if (!messages.length) list.appendChild(el("li", "none", "sub"));
  list.dataset.count = messages.length;
}

// -- charts -------------------------------------------------------------------------------------

const CHARTS = {
  "chart-lag": { series: [["lag_seconds", "lag (s)", "#d6336c"]], value: (u, v) => (v === null ? "-" : v.toFixed(2)) },
  "chart-bytes": { series: [["lag_bytes", "lag", "#1c7ed6"], ["retained_wal_bytes", "retained", "#f08c00"]], value: (u, v) => bytes(v) },
  "chart-rate": { series: [["documents_per_second", "documents/s", "#2f9e44"], ["changes_per_second", "changes/s", "#7048e8"]], value: (u, v) => (v === null ? "-" : v.toFixed(1)) },
};
const plots = {};

function chartData(history, spec) {
  return [history.t, ...spec.series.map(([key]) => history[key])];
}

function renderCharts(history) {
  for (const [id, spec] of Object.entries(CHARTS)) {
    const box = $(id);
    const data = chartData(history, spec);
    if (!plots[id] && typeof uPlot !== "undefined") {
      const opts = {
        width: Math.max(280, box.clientWidth - 16), height: 180,
        series: [{}, ...spec.series.map(([, label, stroke]) => ({ label, stroke, width: 2, spanGaps: true, value: spec.value }))],
        axes: [{}, { size: 84, values: (u, vals) => vals.map((v) => (id === "chart-bytes" ? bytes(v) : v)) }],
        scales: { x: { time: true } },
        legend: { live: false },
      };
      plots[id] = new uPlot(opts, data, box);
    } else if (plots[id]) {
      plots[id].setData(data);
    }
    // What a test (or a curious operator) reads: the points each chart plots.
    box.dataset.points = spec.series.reduce((n, [key]) => n + history[key].filter((v) => v !== null).length, 0);
  }
}

// -- polling ------------------------------------------------------------------------------------

function render(p) {
  renderRun(p);
  renderSnapshot(p.snapshot);
  renderCdc(p);
  renderVerify(p.verify);
  renderSteps(p);
  renderMessages(p.messages);
  renderCharts(p.history);
  document.body.dataset.polls = Number(document.body.dataset.polls) + 1;
  document.body.dataset.ts = p.ts;
}

let failures = 0;

async function poll() {
  try {
    const response = await fetch("/api/v1/progress", { cache: "no-store" });
    if (!response.ok) throw new Error(response.status);
    render(await response.json());
    failures = 0;
    $("offline").hidden = true;
  } catch (e) {
    // The command ended, or the network is down: keep the last view, say so after three misses in a row.
    failures += 1;
    document.body.dataset.error = String(e);
    $("offline").hidden = failures < 3;
  }
  setTimeout(poll, POLL_MS);
}

try {
  render(JSON.parse($("initial-progress").textContent));
} catch (e) {
  // served without the embedded progress: the first poll renders
}
setTimeout(poll, POLL_MS);
