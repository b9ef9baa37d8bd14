// The slipd dashboard: one JSON snapshot a second from /api/events (Server-Sent Events).
"use strict";

const HISTORY = 120; // seconds kept in the charts

function fmtCount(v) {
  if (v >= 1e9) return (v / 1e9).toFixed(2) + " G";
  if (v >= 1e6) return (v / 1e6).toFixed(2) + " M";
  if (v >= 1e4) return (v / 1e3).toFixed(1) + " k";
  return String(Math.round(v));
}
function fmtBytes(v) {
  if (v >= 1 << 30) return (v / (1 << 30)).toFixed(2) + " GiB";
  if (v >= 1 << 20) return (v / (1 << 20)).toFixed(2) + " MiB";
  if (v >= 1 << 10) return (v / (1 << 10)).toFixed(1) + " KiB";
  return Math.round(v) + " B";
}
function fmtNs(ns) {
  if (ns >= 1e6) return (ns / 1e6).toFixed(2) + " ms";
  if (ns >= 1e3) return (ns / 1e3).toFixed(1) + " µs";
  return ns + " ns";
}
function fmtDuration(s) {
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  return (d ? d + "d " : "") + (h ? h + "h " : "") + m + "m " + Math.floor(s % 60) + "s";
}
function setFigure(id, value, text) {
  const el = document.getElementById(id);
  el.dataset.value = String(value);
  el.textContent = text;
}
function cell(row, text, value) {
  const td = document.createElement("td");
  td.textContent = text;
  if (value !== undefined) td.dataset.value = String(value);
  row.appendChild(td);
  return td;
}
// A latency percentile of the last second, or a dash when nothing was recorded in it.
function fmtRecent(h, key) {
  return h && h.count ? fmtNs(h[key]) : "–";
}
// Replaces a table's rows; with none, one row saying why the table is empty.
function fillTable(selector, items, emptyText, addRow) {
  const tbody = document.querySelector(selector + " tbody");
  tbody.replaceChildren();
  if (!items || items.length === 0) {
    const row = document.createElement("tr");
    row.className = "empty";
    const td = cell(row, emptyText);
    td.colSpan = document.querySelectorAll(selector + " thead th").length;
    tbody.appendChild(row);
    return;
  }
  for (const item of items) {
    const row = document.createElement("tr");
    addRow(row, item);
    tbody.appendChild(row);
  }
}

// Charts: uPlot when its files were built in; otherwise the figures and tables still work.
const series = { t: [], in: [], out: [], p50: [], p99: [], p999: [] };
let throughputChart = null;
let latencyChart = null;
function makeCharts() {
  if (typeof uPlot === "undefined") return;
  const width = Math.min(560, window.innerWidth - 60);
  throughputChart = new uPlot({
    width, height: 220,
    series: [{}, { label: "in", stroke: "#1f77b4" }, { label: "out", stroke: "#ff7f0e" }],
    axes: [{}, { size: 64, values: (u, vals) => vals.map(fmtCount) }],
  }, [[], [], []], document.getElementById("chart-throughput"));
  latencyChart = new uPlot({
    width, height: 220,
    series: [{}, { label: "p50", stroke: "#2ca02c" }, { label: "p99", stroke: "#d62728" }, { label: "p99.9", stroke: "#9467bd" }],
  }, [[], [], [], []], document.getElementById("chart-latency"));
}

function update(snap) {
  const s = snap.server;
  document.getElementById("version").textContent = s.version;
  document.getElementById("uptime").textContent = "up " + fmtDuration(s.uptime_s);
  setFigure("msgs-in-rate", s.rates.msgs_in_per_s, fmtCount(s.rates.msgs_in_per_s));
  setFigure("msgs-out-rate", s.rates.msgs_out_per_s, fmtCount(s.rates.msgs_out_per_s));
  setFigure("bytes-in-rate", s.rates.bytes_in_per_s, fmtBytes(s.rates.bytes_in_per_s) + "/s");
  setFigure("bytes-out-rate", s.rates.bytes_out_per_s, fmtBytes(s.rates.bytes_out_per_s) + "/s");
  setFigure("connections", s.connections, fmtCount(s.connections));
  setFigure("subscriptions", s.subscriptions, fmtCount(s.subscriptions));
  setFigure("slow-consumers", s.totals.slow_consumers, fmtCount(s.totals.slow_consumers));
  setFigure("dropped", s.totals.dropped, fmtCount(s.totals.dropped));

  const lat = s.publish_route_latency;
  const tbody = document.querySelector("#latency tbody");
  tbody.replaceChildren();
  for (const [name, h] of [["last second", lat.last_second], ["since start", lat.since_start]]) {
    const row = document.createElement("tr");
    cell(row, name);
    cell(row, fmtCount(h.count));
    for (const k of ["p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns"]) cell(row, fmtNs(h[k]));
    tbody.appendChild(row);
  }

  const conns = document.querySelector("#connections-table tbody");
  conns.replaceChildren();
  for (const c of snap.connections) {
    const row = document.createElement("tr");
    for (const v of [c.id, c.protocol, c.name, c.peer, c.subscriptions]) cell(row, String(v));
    for (const v of [c.msgs_in, c.msgs_out]) cell(row, fmtCount(v));
    for (const v of [c.bytes_in, c.bytes_out]) cell(row, fmtBytes(v));
    cell(row, fmtCount(c.dropped));
    cell(row, fmtBytes(c.pending_bytes));
    conns.appendChild(row);
  }

  fillTable("#streams-table", snap.streams, "no streams (create one with slip stream add; slipd needs --data-dir)",
    (row, st) => {
      row.dataset.stream = st.name;
      cell(row, st.name);
      cell(row, st.subjects.join(", "));
      cell(row, fmtCount(st.messages), st.messages);
      cell(row, fmtBytes(st.bytes), st.bytes);
      cell(row, String(st.last_seq), st.last_seq);
      cell(row, fmtCount(st.rates.stored_per_s), st.rates.stored_per_s);
      cell(row, fmtCount(st.rates.acked_per_s), st.rates.acked_per_s);
      cell(row, fmtCount(st.publish_errors), st.publish_errors);
      cell(row, fmtRecent(st.ack_latency.last_second, "p50_ns"));
      cell(row, fmtRecent(st.ack_latency.last_second, "p99_ns"));
    });
  fillTable("#rpc-table", snap.rpc, "no RPC methods served by this process", (row, m) => {
    row.dataset.method = m.method;
    cell(row, m.method);
    cell(row, fmtCount(m.rates.calls_per_s), m.rates.calls_per_s);
    cell(row, fmtCount(m.calls), m.calls);
    cell(row, fmtCount(m.errors), m.errors);
    cell(row, fmtRecent(m.latency.last_second, "p50_ns"));
    cell(row, fmtRecent(m.latency.last_second, "p99_ns"));
    cell(row, fmtRecent(m.latency.last_second, "p999_ns"));
  });

  series.t.push(Date.now() / 1000);
  series.in.push(s.rates.msgs_in_per_s);
  series.out.push(s.rates.msgs_out_per_s);
  series.p50.push(lat.last_second.count ? lat.last_second.p50_ns / 1e3 : null);
  series.p99.push(lat.last_second.count ? lat.last_second.p99_ns / 1e3 : null);
  series.p999.push(lat.last_second.count ? lat.last_second.p999_ns / 1e3 : null);
  for (const k of Object.keys(series)) if (series[k].length > HISTORY) series[k].shift();
  if (throughputChart) throughputChart.setData([series.t, series.in, series.out]);
  if (latencyChart) latencyChart.setData([series.t, series.p50, series.p99, series.p999]);
}

function connect() {
  const status = document.getElementById("status");
  const es = new EventSource("api/events");
  es.onopen = () => { status.textContent = "live"; status.className = "status live"; };
  es.onmessage = (e) => {
    try { update(JSON.parse(e.data)); } catch (err) { console.error(err); }
  };
  es.onerror = () => { status.textContent = "reconnecting…"; status.className = "status down"; };
}

makeCharts();
connect();
