// The meter values card of a gateway page: a chart of one measurand over a time range,
// loaded from /api/gateways/{id}/meter-values and extended live by "meter" events. A
// range holding more samples than one request loads is drawn from the server's
// min/max buckets (/api/gateways/{id}/meter-series), one per pixel column, beside the
// newest samples as they are.

import { gatewayPath, get, query } from "./api.js";
import { TimeChart, normalize } from "./chart.js";
import { fill, h, table, timeNode, uid } from "./dom.js";

const DEFAULT_MEASURAND = "Energy.Active.Import.Register"; // spec §4.1 SampledValue default
const DEFAULT_UNIT = "Wh";
const LIMIT = 5000; // raw samples loaded; a range holding more is drawn thinned
const MAX_BUCKETS = 4000; // the meter-series route's bound
const AUTO = 0; // "Fit the data": the range of the samples of the last 7 days
const LOADED_SECONDS = 7 * 86400; // how far back the automatic range looks
const RANGES = [
  ["auto", "Fit the data", AUTO],
  ["15m", "Last 15 minutes", 15 * 60],
  ["1h", "Last hour", 3600],
  ["6h", "Last 6 hours", 6 * 3600],
  ["24h", "Last 24 hours", 24 * 3600],
  ["7d", "Last 7 days", 7 * 86400],
];
const SHORTCUTS = [
  ["Energy", "Energy.Active.Import.Register"],
  ["Power", "Power.Active.Import"],
];

/** The measurands the API accepts as a filter (from /openapi.json). */
export function measurandsOf(doc) {
  const parameters = doc.paths?.["/api/gateways/{id}/meter-values"]?.get?.parameters || [];
  const measurand = parameters.find((parameter) => parameter.name === "measurand");
  return measurand?.schema?.enum || [DEFAULT_MEASURAND];
}

function seriesLabel(serviceId, phase) {
  const name = serviceId === 0 ? "Gateway (service 0)" : `Service ${serviceId}`;
  return phase ? `${name} ${phase}` : name;
}

export function meterCard(ctx, gatewayId) {
  const measurands = measurandsOf(ctx.openapi);
  let measurand = measurands.includes(DEFAULT_MEASURAND) ? DEFAULT_MEASURAND : measurands[0];
  let rangeSeconds = AUTO;
  let samples = [];
  let keys = new Set();
  let thinned = null; // {total}: the range is drawn from the server's buckets
  let timer = null;
  let generation = 0;

  const measurandSelect = h(
    "select",
    { id: uid("measurand"), onchange: () => choose(measurandSelect.value) },
    measurands.map((name) => h("option", { value: name }, name)),
  );
  measurandSelect.value = measurand;
  const rangeSelect = h(
    "select",
    {
      id: uid("range"),
      onchange: () => {
        rangeSeconds = Number(rangeSelect.value);
        load().catch(() => {});
      },
    },
    RANGES.map(([, label, seconds]) => h("option", { value: String(seconds) }, label)),
  );
  rangeSelect.value = String(rangeSeconds);
  const shortcutButtons = SHORTCUTS.map(([label, name]) =>
    h("button", { type: "button", class: "segment", "data-measurand": name, onclick: () => choose(name) }, label),
  );
  const chart = new TimeChart();
  const note = h("p", { class: "muted note", "aria-live": "polite" });
  const latest = h("div");
  const node = h(
    "section",
    { class: "card span-12", "aria-labelledby": "meter-title" },
    h(
      "div",
      { class: "card-head" },
      h("h2", { id: "meter-title" }, "Meter values"),
      h(
        "div",
        { class: "controls" },
        h("div", { class: "segmented", role: "group", "aria-label": "Energy or power" }, shortcutButtons),
        h("div", { class: "field inline-field" }, h("label", { for: measurandSelect.id }, "Measurand"), measurandSelect),
        h("div", { class: "field inline-field" }, h("label", { for: rangeSelect.id }, "Time range"), rangeSelect),
      ),
    ),
    chart.node,
    note,
    h("details", { class: "raw" }, h("summary", {}, "Latest samples as a table"), latest),
  );

  function choose(name) {
    measurand = name;
    measurandSelect.value = name;
    load().catch(() => {});
  }

  function add(sample) {
    const key = `${sample.serviceId}|${sample.phase || ""}|${sample.t}`;
    if (keys.has(key)) return false;
    keys.add(key);
    samples.push(sample);
    return true;
  }

  function toSample(serviceId, timestamp, sampled) {
    const raw = Number.parseFloat(sampled.value);
    if (!Number.isFinite(raw)) return null; // SignedData or text: nothing to draw
    const { value, unit } = normalize(raw, sampled.unit || DEFAULT_UNIT);
    return { serviceId, phase: sampled.phase || null, t: Date.parse(timestamp), v: value, unit, timestamp, text: sampled.value, rawUnit: sampled.unit || DEFAULT_UNIT };
  }

  // The time range drawn: the chosen one up to now, or (automatic) the samples' own span.
  function timeRange() {
    const now = Date.now();
    if (rangeSeconds !== AUTO) return [now - rangeSeconds * 1000, now];
    if (!samples.length) return [now - 3600 * 1000, now];
    let first = Infinity;
    let last = -Infinity;
    for (const sample of samples) {
      if (sample.t < first) first = sample.t;
      if (sample.t > last) last = sample.t;
    }
    const pad = Math.max((last - first) * 0.03, 30000);
    return [first - pad, last + pad];
  }

  function draw() {
    timer = null;
    const [from, to] = timeRange();
    const oldest = Date.now() - (rangeSeconds === AUTO ? LOADED_SECONDS : rangeSeconds) * 1000;
    samples = samples.filter((sample) => sample.t >= oldest - 60000);
    // One unit per chart: the most common one (a gateway should not mix them).
    const units = new Map();
    for (const sample of samples) units.set(sample.unit, (units.get(sample.unit) || 0) + 1);
    const unit = [...units.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] || DEFAULT_UNIT;
    const groups = new Map();
    for (const sample of samples) {
      if (sample.unit !== unit || sample.t < from) continue;
      const key = `${sample.serviceId}|${sample.phase || ""}`;
      if (!groups.has(key)) groups.set(key, { key, label: seriesLabel(sample.serviceId, sample.phase), serviceId: sample.serviceId, phase: sample.phase || "", points: [] });
      groups.get(key).points.push({ t: sample.t, v: sample.v });
    }
    const series = [...groups.values()].sort((a, b) => a.serviceId - b.serviceId || a.phase.localeCompare(b.phase));
    for (const one of series) one.points.sort((a, b) => a.t - b.t);
    chart.draw(series, { from, to, unit, title: `${measurand}, ${rangeSelect.selectedOptions[0]?.textContent || ""}`, empty: `No ${measurand} samples in this time range.` });
    const mixed = units.size > 1 ? ` Samples in other units than ${unit} are not drawn.` : "";
    const shown = thinned ? `${thinned.total.toLocaleString("en-US")} samples, shown as min/max per pixel column.` : "";
    note.textContent = `${shown}${mixed}`.trim();
    for (const button of shortcutButtons) button.setAttribute("aria-pressed", String(button.dataset.measurand === measurand));
    const recent = [...samples].sort((a, b) => b.t - a.t).slice(0, 20);
    fill(latest, 
      table(
        `Latest ${measurand} samples`,
        [
          ["Time", (row) => timeNode(row.timestamp)],
          ["Service", (row) => String(row.serviceId)],
          ["Phase", (row) => row.phase || "—"],
          ["Value", (row) => `${row.text} ${row.rawUnit}`],
        ],
        recent,
        { empty: "No samples." },
      ),
    );
  }

  function scheduleDraw() {
    if (timer === null) timer = setTimeout(draw, 250);
  }

  // The range's lowest and highest sample of each pixel column, from the server.
  async function loadBuckets(since) {
    const buckets = Math.min(MAX_BUCKETS, Math.max(1, Math.round(chart.columns())));
    return get(`${gatewayPath(gatewayId, "meter-series")}${query({ measurand, since, buckets })}`);
  }

  async function load() {
    const mine = ++generation;
    const since = new Date(Date.now() - (rangeSeconds === AUTO ? LOADED_SECONDS : rangeSeconds) * 1000).toISOString();
    const data = await get(`${gatewayPath(gatewayId, "meter-values")}${query({ measurand, since, limit: LIMIT })}`);
    if (mine !== generation) return; // a newer choice was made meanwhile
    // More samples than one request loads: the whole range as min/max buckets.
    const series = data.count >= LIMIT ? await loadBuckets(since) : null;
    if (mine !== generation) return;
    samples = [];
    keys = new Set();
    thinned = series ? { total: series.total } : null;
    for (const item of data.items) {
      const sample = toSample(item.serviceId, item.timestamp, item);
      if (sample) add(sample);
    }
    for (const one of series?.series || []) {
      const sampled = { phase: one.phase, unit: one.unit };
      for (const bucket of one.buckets) {
        for (const [value, at] of [[bucket.min, bucket.minAt], [bucket.max, bucket.maxAt]]) {
          const sample = toSample(one.serviceId, at, { ...sampled, value: String(value) });
          if (sample) add(sample);
        }
      }
    }
    draw();
  }

  function onEvent(kind, data) {
    if (kind !== "meter") return;
    let changed = false;
    for (const meterValue of data.meterValue || []) {
      for (const sampled of meterValue.sampledValue || []) {
        if ((sampled.measurand || DEFAULT_MEASURAND) !== measurand) continue;
        const sample = toSample(data.serviceId, meterValue.timestamp, sampled);
        if (sample && add(sample)) changed = true;
      }
    }
    if (changed) scheduleDraw();
  }

  // Slide the time window now and then, even when no sample arrives (no request is made).
  const slide = setInterval(scheduleDraw, 30000);

  return {
    node,
    load,
    onEvent,
    dispose() {
      clearInterval(slide);
      if (timer !== null) clearTimeout(timer);
      chart.dispose();
    },
  };
}
