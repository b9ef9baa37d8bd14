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
const udpSeries = { t: [], in: [], out: [] };
let throughputChart = null;
let latencyChart = null;
let udpChart = null;
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
// The UDP chart is made when the first snapshot with a UDP listener arrives (its panel is hidden
// before that, and stays hidden for a slipd without one).
function makeUdpChart() {
  if (typeof uPlot === "undefined" || udpChart) return;
  udpChart = new uPlot({
    width: Math.min(560, window.innerWidth - 60), height: 180,
    series: [{}, { label: "in", stroke: "#1f77b4" }, { label: "out", stroke: "#ff7f0e" }],
    axes: [{}, { size: 64, values: (u, vals) => vals.map(fmtCount) }],
  }, [[], [], []], document.getElementById("chart-udp"));
}

// Every consumer of every stream, one row each.
function updateConsumers(streams) {
  const all = [];
  for (const st of streams || []) for (const c of st.consumers || []) all.push([st.name, c]);
  const why = streams && streams.length
    ? "no consumers (add one with slip consumer add STREAM NAME, or read with slip consume)"
    : "no consumers: there are no streams";
  fillTable("#consumers-table", all, why, (row, [stream, c]) => {
    row.dataset.stream = stream;
    row.dataset.consumer = c.name;
    cell(row, stream);
    cell(row, c.name + (c.durable ? "" : " (ephemeral)"));
    cell(row, c.ack_policy + (c.push_bound ? ", push" : ""));
    cell(row, fmtCount(c.num_pending), c.num_pending);
    cell(row, fmtCount(c.num_ack_pending), c.num_ack_pending);
    cell(row, fmtCount(c.num_redelivered), c.num_redelivered);
    cell(row, fmtCount(c.num_waiting), c.num_waiting);
    cell(row, String(c.delivered_seq), c.delivered_seq);
    cell(row, String(c.ack_floor), c.ack_floor);
    const rate = c.rates ? c.rates.deliveries_per_s : 0;
    cell(row, fmtCount(rate), rate);
    cell(row, fmtCount(c.deliveries), c.deliveries);
    cell(row, fmtCount(c.redeliveries), c.redeliveries);
  });
}

// The UDP panel, or its "not enabled" note.
function updateUdp(u) {
  const on = !!(u && u.enabled);
  document.getElementById("udp-on").hidden = !on;
  document.getElementById("udp-off").hidden = on;
  document.getElementById("udp-panel").dataset.enabled = String(on);
  if (!on) return;
  makeUdpChart();
  document.getElementById("udp-address").textContent = u.address;
  const r = u.rates;
  setFigure("udp-sessions", u.sessions, fmtCount(u.sessions));
  setFigure("udp-packets-in-rate", r.packets_received_per_s, fmtCount(r.packets_received_per_s));
  setFigure("udp-packets-out-rate", r.packets_sent_per_s, fmtCount(r.packets_sent_per_s));
  setFigure("udp-bytes-in-rate", r.bytes_received_per_s, fmtBytes(r.bytes_received_per_s) + "/s");
  setFigure("udp-bytes-out-rate", r.bytes_sent_per_s, fmtBytes(r.bytes_sent_per_s) + "/s");
  setFigure("udp-lost", u.packets_lost, fmtCount(u.packets_lost));
  setFigure("udp-retransmitted", u.packets_retransmitted, fmtCount(u.packets_retransmitted));
  setFigure("udp-fec-recovered", u.fec.recovered, fmtCount(u.fec.recovered));
  setFigure("udp-packets-in", u.packets_received, fmtCount(u.packets_received));
  setFigure("udp-packets-out", u.packets_sent, fmtCount(u.packets_sent));
  setFigure("udp-bytes-in", u.bytes_received, fmtBytes(u.bytes_received));
  setFigure("udp-bytes-out", u.bytes_sent, fmtBytes(u.bytes_sent));
  setFigure("udp-fec-repair-in", u.fec.repair_received, fmtCount(u.fec.repair_received));
  setFigure("udp-fec-repair-out", u.fec.repair_sent, fmtCount(u.fec.repair_sent));
  setFigure("udp-rejected", u.packets_rejected, fmtCount(u.packets_rejected));
  setFigure("udp-duplicate", u.packets_duplicate, fmtCount(u.packets_duplicate));
  setFigure("udp-accepted", u.accepted, fmtCount(u.accepted));
  setFigure("udp-unconfirmed", u.unconfirmed, fmtCount(u.unconfirmed));
  setFigure("udp-fec-connections", u.fec.connections, fmtCount(u.fec.connections));
  setFigure("udp-fec-unrecoverable", u.fec.unrecoverable_blocks, fmtCount(u.fec.unrecoverable_blocks));
  udpSeries.t.push(Date.now() / 1000);
  udpSeries.in.push(r.packets_received_per_s);
  udpSeries.out.push(r.packets_sent_per_s);
  for (const k of Object.keys(udpSeries)) if (udpSeries[k].length > HISTORY) udpSeries[k].shift();
  if (udpChart) udpChart.setData([udpSeries.t, udpSeries.in, udpSeries.out]);
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
  updateConsumers(snap.streams);
  updateUdp(snap.udp);
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
