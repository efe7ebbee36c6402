// A small time-series chart drawn as SVG: one line per series, a point per sample,
// "nice" value ticks, time ticks in local time, a legend and a hover read-out.

import { fill, formatTime, h, s } from "./dom.js";

const HEIGHT = 260;
const MARGIN = { top: 14, right: 18, bottom: 30, left: 70 };
const MAX_DOTS = 400; // per series; denser series are drawn as lines only
const BUCKET_PX = 2; // thinning: one min/max bucket per 2 pixels of width
const TIME_STEPS = [
  1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800,
].map((seconds) => seconds * 1000);

// Units that take SI prefixes, and those the wire may send already prefixed (spec §4.1).
const PREFIXABLE = new Set(["Wh", "W", "varh", "var", "VA"]);
const PREFIXED = { kWh: "Wh", kW: "W", kvarh: "varh", kvar: "var", kVA: "VA" };
const UNIT_LABELS = { Celsius: "°C", Fahrenheit: "°F", Percent: "%" };

/** Convert a sample to a base unit: {value, unit} (kWh → Wh, …). */
export function normalize(value, unit) {
  if (unit in PREFIXED) return { value: value * 1000, unit: PREFIXED[unit] };
  return { value, unit };
}

/** Ticks at 1, 2 or 5 × 10^n covering [min, max]. */
export function niceTicks(min, max, count = 5) {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return { low: 0, high: 1, ticks: [0, 1] };
  if (min === max) {
    const pad = Math.abs(min) * 0.05 || 1;
    min -= pad;
    max += pad;
  }
  const rough = (max - min) / count;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const normalized = rough / magnitude;
  const step = (normalized < 1.5 ? 1 : normalized < 3 ? 2 : normalized < 7 ? 5 : 10) * magnitude;
  const low = Math.floor(min / step) * step;
  const high = Math.ceil(max / step) * step;
  const ticks = [];
  for (let value = low; value <= high + step / 2; value += step) ticks.push(Number(value.toPrecision(12)));
  return { low, high, ticks, step };
}

/** How to show values of a unit in a range: {factor, label}, e.g. {1000, "kWh"}. */
export function unitScale(unit, largest) {
  const label = UNIT_LABELS[unit] ?? unit ?? "";
  if (!PREFIXABLE.has(unit)) return { factor: 1, label };
  if (largest >= 1e6) return { factor: 1e6, label: `M${unit}` };
  if (largest >= 1e3) return { factor: 1e3, label: `k${unit}` };
  return { factor: 1, label };
}

function formatNumber(value, step) {
  const decimals = step >= 1 ? 0 : Math.min(6, Math.ceil(-Math.log10(step)));
  return value.toLocaleString(undefined, { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

function timeTicks(from, to, width) {
  const wanted = Math.max(2, Math.floor(width / 110));
  const step = TIME_STEPS.find((candidate) => (to - from) / candidate <= wanted) || TIME_STEPS.at(-1);
  // Align to local time (whole minutes/hours/days on the wall clock).
  const offset = new Date(from).getTimezoneOffset() * 60000;
  const first = Math.ceil((from - offset) / step) * step + offset;
  const ticks = [];
  for (let t = first; t <= to; t += step) ticks.push(t);
  return { ticks, step };
}

function timeLabel(t, step, span) {
  const date = new Date(t);
  const hh = String(date.getHours()).padStart(2, "0");
  const mm = String(date.getMinutes()).padStart(2, "0");
  const ss = String(date.getSeconds()).padStart(2, "0");
  if (step >= 86400000) return `${date.getMonth() + 1}/${date.getDate()}`;
  if (span > 86400000 && hh === "00" && mm === "00") return `${date.getMonth() + 1}/${date.getDate()}`;
  return step < 60000 ? `${hh}:${mm}:${ss}` : `${hh}:${mm}`;
}

// Where samples are far apart (the gateway was offline) the line breaks: a gap of more
// than 3 × the median gap of the samples (measured before thinning).
function gapLimit(points) {
  const gaps = [];
  for (let i = 1; i < points.length; i += 1) gaps.push(points[i].t - points[i - 1].t);
  gaps.sort((a, b) => a - b);
  return gaps.length ? Math.max(gaps[Math.floor(gaps.length / 2)] * 3, 1000) : Infinity;
}

/**
 * Thin time-ordered points for drawing: the range [from, to] is cut into buckets (one
 * per BUCKET_PX pixels) and each bucket keeps its first, lowest, highest and last point,
 * in time order. Peaks and dips survive however many samples fall on one pixel, and a
 * week of 1-second samples becomes a few thousand vertices. Series with few points per
 * bucket are returned as they are.
 */
export function thin(points, from, to, buckets) {
  if (points.length <= buckets * 4) return points;
  const span = to - from || 1;
  const out = [];
  let bucket = null;
  let kept = [];
  const flush = () => {
    const unique = [...new Set(kept)].sort((a, b) => a.t - b.t);
    out.push(...unique);
  };
  let first = null;
  let low = null;
  let high = null;
  let last = null;
  for (const point of points) {
    const index = Math.floor(((point.t - from) / span) * buckets);
    if (index !== bucket) {
      if (first) {
        kept = [first, low, high, last];
        flush();
      }
      bucket = index;
      first = low = high = last = point;
      continue;
    }
    if (point.v < low.v) low = point;
    if (point.v > high.v) high = point;
    last = point;
  }
  if (first) {
    kept = [first, low, high, last];
    flush();
  }
  return out;
}

function linePath(points, x, y, limit) {
  let d = "";
  points.forEach((point, i) => {
    const move = i === 0 || point.t - points[i - 1].t > limit;
    d += `${move ? "M" : "L"}${x(point.t).toFixed(1)},${y(point.v).toFixed(1)}`;
  });
  return d;
}

/**
 * A chart of series [{key, label, points: [{t (ms), v}]}] over [from, to].
 *
 * chart.node goes into the page; chart.draw(series, {from, to, unit, title}) redraws.
 */
export class TimeChart {
  constructor() {
    this.plot = h("div", { class: "chart-plot" });
    this.legend = h("ul", { class: "legend", "aria-label": "Series" });
    this.tooltip = h("div", { class: "chart-tip", hidden: true, "aria-hidden": "true" });
    this.node = h("figure", { class: "chart" }, this.plot, this.tooltip, this.legend);
    this.last = null;
    this.observer = new ResizeObserver(() => {
      const width = this.plot.clientWidth;
      if (this.last && width && width !== this.width) this.draw(...this.last);
    });
    this.observer.observe(this.plot);
  }

  dispose() {
    this.observer.disconnect();
  }

  /** The plot's width in pixel columns (how many buckets a thinned series needs). */
  columns() {
    const width = Math.max(this.plot.clientWidth || 640, 320);
    return width - MARGIN.left - MARGIN.right;
  }

  draw(series, options) {
    this.last = [series, options];
    const { from, to, unit, title, empty = "No samples in this time range." } = options;
    const width = Math.max(this.plot.clientWidth || 640, 320);
    this.width = width;
    const innerW = width - MARGIN.left - MARGIN.right;
    const innerH = HEIGHT - MARGIN.top - MARGIN.bottom;
    const total = series.reduce((sum, one) => sum + one.points.length, 0);
    let min = Infinity;
    let max = -Infinity;
    let first = Infinity;
    let last = -Infinity;
    for (const one of series) {
      for (const point of one.points) {
        if (point.v < min) min = point.v;
        if (point.v > max) max = point.v;
        if (point.t < first) first = point.t;
        if (point.t > last) last = point.t;
      }
    }
    const scale = unitScale(unit, Math.max(Math.abs(min), Math.abs(max)));
    const yTicks = niceTicks(min / scale.factor, max / scale.factor);
    const x = (t) => MARGIN.left + ((t - from) / (to - from || 1)) * innerW;
    const y = (v) =>
      MARGIN.top + innerH - ((v / scale.factor - yTicks.low) / (yTicks.high - yTicks.low || 1)) * innerH;

    const titleId = `chart-title-${Math.random().toString(36).slice(2)}`;
    const svg = s("svg", {
      class: "chart-svg",
      width,
      height: HEIGHT,
      viewBox: `0 0 ${width} ${HEIGHT}`,
      role: "img",
      "aria-labelledby": titleId,
      "data-points": total,
      "data-first": total ? new Date(first).toISOString() : "",
      "data-last": total ? new Date(last).toISOString() : "",
    });
    svg.append(s("title", { id: titleId }, `${title}: ${total} sample${total === 1 ? "" : "s"}`));

    const grid = s("g", { class: "grid" });
    if (total) {
      for (const tick of yTicks.ticks) {
        const ty = y(tick * scale.factor);
        grid.append(s("line", { x1: MARGIN.left, x2: width - MARGIN.right, y1: ty, y2: ty }));
        grid.append(
          s("text", { x: MARGIN.left - 8, y: ty + 4, class: "tick y" }, formatNumber(tick, yTicks.step)),
        );
      }
      grid.append(
        s(
          "text",
          { x: 12, y: MARGIN.top + innerH / 2, class: "axis-label", transform: `rotate(-90 12 ${MARGIN.top + innerH / 2})` },
          scale.label,
        ),
      );
    }
    const xTicks = timeTicks(from, to, innerW);
    for (const tick of xTicks.ticks) {
      const tx = x(tick);
      grid.append(s("line", { x1: tx, x2: tx, y1: MARGIN.top, y2: MARGIN.top + innerH, class: "vertical" }));
      grid.append(
        s("text", { x: tx, y: HEIGHT - 10, class: "tick x" }, timeLabel(tick, xTicks.step, to - from)),
      );
    }
    grid.append(
      s("line", {
        x1: MARGIN.left,
        x2: width - MARGIN.right,
        y1: MARGIN.top + innerH,
        y2: MARGIN.top + innerH,
        class: "axis",
      }),
    );
    svg.append(grid);

    const lines = s("g", { class: "series" });
    const buckets = Math.max(1, Math.floor(innerW / BUCKET_PX));
    let drawn = 0;
    series.forEach((one, index) => {
      const colour = `c${index % 8}`;
      const shown = thin(one.points, from, to, buckets);
      drawn += shown.length;
      const group = s("g", { class: `line ${colour}`, "data-series": one.key, "data-drawn": shown.length });
      if (shown.length > 1) group.append(s("path", { d: linePath(shown, x, y, gapLimit(one.points)) }));
      if (one.points.length <= MAX_DOTS) {
        for (const point of one.points) {
          group.append(s("circle", { class: "point", cx: x(point.t).toFixed(1), cy: y(point.v).toFixed(1), r: 2.6 }));
        }
      }
      lines.append(group);
    });
    svg.append(lines);
    svg.setAttribute("data-drawn", drawn);

    if (!total) {
      // Wrapped to the plot's width (a phone's plot is narrow), one tspan per line.
      const perLine = Math.max(12, Math.floor(innerW / 7.5));
      const wrapped = [];
      for (const word of empty.split(" ")) {
        if (wrapped.length && `${wrapped.at(-1)} ${word}`.length <= perLine) wrapped[wrapped.length - 1] += ` ${word}`;
        else wrapped.push(word);
      }
      const cx = MARGIN.left + innerW / 2;
      const top = MARGIN.top + innerH / 2 - ((wrapped.length - 1) * 16) / 2;
      svg.append(
        s(
          "text",
          { x: cx, y: top, class: "empty-text" },
          wrapped.map((line, index) => s("tspan", { x: cx, dy: index ? 16 : 0 }, index < wrapped.length - 1 ? `${line} ` : line)),
        ),
      );
    }

    // Hover read-out: the samples nearest in time to the pointer, one per series.
    const guide = s("line", { class: "guide", y1: MARGIN.top, y2: MARGIN.top + innerH, visibility: "hidden" });
    const overlay = s("rect", {
      class: "overlay",
      x: MARGIN.left,
      y: MARGIN.top,
      width: innerW,
      height: innerH,
    });
    svg.append(guide, overlay);
    overlay.addEventListener("pointermove", (event) => {
      if (!total) return;
      const box = svg.getBoundingClientRect();
      const px = event.clientX - box.left;
      const t = from + ((px - MARGIN.left) / innerW) * (to - from);
      const rows = [];
      let nearest = null;
      series.forEach((one, index) => {
        let best = null;
        for (const point of one.points) {
          if (!best || Math.abs(point.t - t) < Math.abs(best.t - t)) best = point;
        }
        if (best) {
          rows.push(
            h(
              "div",
              {},
              h("span", { class: `swatch c${index % 8}` }),
              `${one.label}: ${formatNumber(best.v / scale.factor, yTicks.step / 10)} ${scale.label}`,
            ),
          );
          if (!nearest || Math.abs(best.t - t) < Math.abs(nearest.t - t)) nearest = best;
        }
      });
      if (!nearest) return;
      guide.setAttribute("x1", x(nearest.t));
      guide.setAttribute("x2", x(nearest.t));
      guide.setAttribute("visibility", "visible");
      fill(this.tooltip, 
        h("strong", {}, formatTime(new Date(nearest.t).toISOString(), { alwaysDate: true })),
        rows,
      );
      this.tooltip.hidden = false;
      const left = Math.min(x(nearest.t) + 12, width - 220);
      this.tooltip.style.left = `${Math.max(left, 0)}px`;
      this.tooltip.style.top = `${MARGIN.top}px`;
    });
    overlay.addEventListener("pointerleave", () => {
      guide.setAttribute("visibility", "hidden");
      this.tooltip.hidden = true;
    });

    fill(this.plot, svg);
    fill(this.legend, 
      ...series.map((one, index) =>
        h(
          "li",
          {},
          h("span", { class: `swatch c${index % 8}`, "aria-hidden": "true" }),
          `${one.label} (${one.points.length})`,
        ),
      ),
    );
  }
}
