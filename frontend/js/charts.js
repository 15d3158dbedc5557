// Charts are pure functions of data that end in Plotly.react, with an explicit empty state.
// Server figures (compare page, confusion matrix) arrive as {data, layout} from the plotly
// package; the live curves of the run page are built here from the metrics cursor.

import { ema, xValues } from "./curves.js";
import { metricValue, plotlyText } from "./format.js";

export const PALETTE = [
  "#2563eb",
  "#e66100",
  "#1a9850",
  "#c2185b",
  "#7c3aed",
  "#0891b2",
  "#b45309",
  "#4b5563",
  "#65a30d",
  "#db2777",
];
const FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif";

export const PLOT_CONFIG = {
  responsive: true,
  displaylogo: false,
  // no link to the plotly cloud; image export works offline
  showLink: false,
  modeBarButtonsToRemove: ["lasso2d", "select2d"],
};

function axis(title, extra = {}) {
  return {
    title: { text: title, font: { size: 12 } },
    gridcolor: "#e5e7eb",
    linecolor: "#9ca3af",
    zeroline: false,
    automargin: true,
    ticks: "outside",
    tickcolor: "#9ca3af",
    ...extra,
  };
}

function emptyLayout(title, message) {
  return {
    title: { text: title, x: 0, xanchor: "left", font: { size: 14 } },
    font: { family: FONT, size: 12, color: "#1f2937" },
    xaxis: { visible: false },
    yaxis: { visible: false },
    margin: { l: 16, r: 16, t: 40, b: 16 },
    annotations: [
      {
        text: message,
        showarrow: false,
        xref: "paper",
        yref: "paper",
        x: 0.5,
        y: 0.5,
        font: { size: 13, color: "#6b7280" },
      },
    ],
  };
}

// The compare page loads Plotly.js's basic bundle (scatter, bar, pie: all its figures use;
// 1.2 MB, no eval): the full 4.8 MB bundle took seconds to evaluate (bench/dashboard.py).
// The run page (confusion heat map) loads the full bundle from /static/vendor/.
export const PLOTLY_SRC = "/static/lib/plotly-basic.min.js";

function plotly() {
  if (!window.Plotly) throw new Error("Plotly.js did not load");
  return window.Plotly;
}

let plotlyLoading = null;
/**
 * Plotly once its script has run. A page that starts its API requests before Plotly is
 * evaluated (compare.html lists the bundle after the page module) awaits this; a page
 * without the script tag gets one added.
 */
export function loadPlotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!plotlyLoading) {
    plotlyLoading = new Promise((resolve, reject) => {
      let script = document.querySelector(`script[src="${PLOTLY_SRC}"]`);
      if (!script) {
        script = document.createElement("script");
        script.src = PLOTLY_SRC;
        document.head.append(script);
      }
      script.addEventListener("load", () => resolve(plotly()));
      script.addEventListener("error", () => reject(new Error(`Plotly.js did not load (${PLOTLY_SRC})`)));
    });
  }
  return plotlyLoading;
}

/** Render a figure made by the server (backend/figures). */
export function renderFigure(div, fig, { title = "", empty = "Nothing to plot yet" } = {}) {
  const data = (fig && fig.data) || [];
  const layout = (fig && fig.layout) || emptyLayout(title, empty);
  if (!data.length && !(layout.annotations && layout.annotations.length)) {
    return plotly().react(div, [], emptyLayout(title, empty), PLOT_CONFIG);
  }
  return plotly().react(div, data, { ...layout, autosize: true }, PLOT_CONFIG);
}

/**
 * Curves of one run: series = {key: {steps, values}}; keys picks which to draw.
 * Train keys solid, "val_" keys dashed with markers (they come once per epoch). With smoothing,
 * each key is a faint raw line under its smoothed line (display only: the data is unchanged).
 * @param {{smoothing?: number, axis?: string, anchors?: object, name?: (key: string) => string}} view
 */
export function curveTraces(series, keys, view = {}) {
  const traces = [];
  let plain = 0;
  const smoothing = view.smoothing || 0;
  for (const key of keys) {
    const s = series[key];
    if (!s || !s.steps.length) continue;
    // the interval means ("loss") are the line; epoch means ("train_loss") and validation
    // ("val_loss") come once per epoch, drawn with markers; validation dashed, in orange
    const validation = key.startsWith("val_");
    const epochly = validation || key.startsWith("train_");
    const colour = validation
      ? PALETTE[1]
      : key.startsWith("train_")
        ? "#1e3a8a"
        : PALETTE[(plain++ * 2) % PALETTE.length];
    const x = view.axis ? xValues(s.steps, view.axis, view.anchors || {}) : s.steps;
    const raw = s.values.map(metricValue);
    const name = plotlyText(view.name ? view.name(key) : key);
    if (smoothing > 0) {
      traces.push({
        type: "scatter",
        mode: "lines",
        name,
        x,
        y: raw,
        showlegend: false,
        hoverinfo: "skip",
        legendgroup: name,
        line: { color: colour, width: 1, dash: validation ? "dash" : "solid" },
        opacity: 0.25,
        connectgaps: false,
        meta: { key: plotlyText(key), role: "raw" },
      });
    }
    traces.push({
      type: "scatter",
      mode: epochly ? "lines+markers" : "lines",
      name,
      legendgroup: name,
      x,
      y: smoothing > 0 ? ema(raw, smoothing) : raw,
      line: { color: colour, width: epochly ? 2 : 1.5, dash: validation ? "dash" : "solid" },
      marker: { size: 6 },
      connectgaps: false,
      meta: { key: plotlyText(key), role: smoothing > 0 ? "smoothed" : "raw" },
    });
  }
  return traces;
}

/** A constant series (e.g. a fixed learning rate) would get Plotly's ±1 default range. */
function flatRange(traces) {
  const ys = traces.flatMap((t) => t.y).filter((v) => v !== null);
  if (!ys.length) return {};
  const lo = ys.reduce((a, b) => Math.min(a, b));
  const hi = ys.reduce((a, b) => Math.max(a, b));
  if (hi - lo > Math.abs(hi) * 1e-9) return {};
  const pad = Math.abs(hi) * 0.5 || 1;
  return { range: [lo - pad, hi + pad] };
}

/**
 * One chart of a run's curves. view: {smoothing, logY, axis ("step"|"epoch"|"relative"|"wall"),
 * axisTitle, anchors, name(key), phases: [{step, label}]}. Phase starts are dotted vertical lines.
 */
export function renderCurves(
  div,
  series,
  keys,
  { title, yTitle, log = false, empty = "No points logged yet", view = {} },
) {
  const traces = curveTraces(series, keys, view);
  if (!traces.length) return plotly().react(div, [], emptyLayout(title, empty), PLOT_CONFIG);
  const logY = log || view.logY;
  const axisKind = view.axis || "step";
  const shapes = [];
  const annotations = [];
  for (const p of view.phases || []) {
    const [x] = xValues([p.step], axisKind, view.anchors || {});
    shapes.push({
      type: "line",
      xref: "x",
      yref: "paper",
      x0: x,
      x1: x,
      y0: 0,
      y1: 1,
      line: { color: "#6b7280", width: 1, dash: "dot" },
    });
    annotations.push({
      x,
      xref: "x",
      y: 1,
      yref: "paper",
      yanchor: "bottom",
      xanchor: "left",
      showarrow: false,
      text: plotlyText(p.label),
      font: { size: 10, color: "#4b5563" },
    });
  }
  const layout = {
    title: { text: title, x: 0, xanchor: "left", font: { size: 14 } },
    font: { family: FONT, size: 12, color: "#1f2937" },
    paper_bgcolor: "#ffffff",
    plot_bgcolor: "#ffffff",
    margin: { l: 56, r: 16, t: 40, b: 44 },
    xaxis: axis(view.axisTitle || "Step (training batch)", axisKind === "wall" ? { type: "date" } : {}),
    // a log axis is labelled at 1, 2 and 5 of each decade with the whole number ("0.5", not
    // Plotly's minor-digit "5" that reads as five)
    yaxis: axis(yTitle, logY ? { type: "log", ...logTicks(traces.flatMap((t) => t.y || [])) } : flatRange(traces)),
    // under the plot: the toolbar sits over the top right corner
    legend: { orientation: "h", y: -0.22, yanchor: "top", x: 0, font: { size: 11 } },
    hovermode: "x unified",
    shapes,
    annotations,
    // keep the zoom while new points arrive; a new axis or scale starts unzoomed
    uirevision: `${axisKind}:${logY ? "log" : "linear"}`,
  };
  return plotly().react(div, traces, layout, PLOT_CONFIG);
}

const MIB = 1024 * 1024;

/**
 * The run's system metrics (worker/system_metrics.py): the job process's CPU use in % on the
 * left axis and its memory in MiB on the right (system/rss_bytes, system/gpu_i_memory_used_bytes
 * divided by 2^20), against seconds since the job started (their step). GPU utilisation keys
 * share the % axis.
 * @param {Object<string, {steps: number[], values: number[]}>} series system/ keys only
 */
export function renderSystem(div, series, { empty = "No system metrics logged" } = {}) {
  const title = "System (job process)";
  const keys = Object.keys(series)
    .filter((k) => series[k].steps.length)
    .sort();
  if (!keys.length) return plotly().react(div, [], emptyLayout(title, empty), PLOT_CONFIG);
  const traces = keys.map((key, i) => {
    const bytes = key.endsWith("_bytes");
    const name = key
      .replace(/^system\//, "")
      .replace(/_bytes$/, " (MiB)")
      .replace(/_percent$/, " (%)");
    return {
      type: "scatter",
      mode: "lines",
      name,
      x: series[key].steps,
      y: series[key].values.map((v) => (bytes && Number.isFinite(v) ? v / MIB : metricValue(v))),
      yaxis: bytes ? "y2" : "y",
      line: { color: PALETTE[i % PALETTE.length], width: 1.5, dash: bytes ? "solid" : "dot" },
      hovertemplate: `%{y:.1f}${bytes ? " MiB" : " %"}<extra>${plotlyText(name)}</extra>`,
    };
  });
  const layout = {
    title: { text: title, x: 0, xanchor: "left", font: { size: 14 } },
    font: { family: FONT, size: 12, color: "#1f2937" },
    paper_bgcolor: "#ffffff",
    plot_bgcolor: "#ffffff",
    margin: { l: 56, r: 56, t: 40, b: 44 },
    xaxis: axis("Seconds since the job started"),
    yaxis: axis("CPU / GPU use (%)", { rangemode: "tozero" }),
    yaxis2: axis("Memory (MiB)", { overlaying: "y", side: "right", rangemode: "tozero", showgrid: false }),
    legend: { orientation: "h", y: -0.22, yanchor: "top", x: 0, font: { size: 11 } },
    hovermode: "x unified",
    uirevision: "system",
  };
  return plotly().react(div, traces, layout, PLOT_CONFIG);
}

/**
 * Explicit ticks for a log axis over `values`: 1-2-5 steps of each decade (1 per decade when the
 * data span more than three), each labelled with its full value ("0.05", "0.2", "1"). Returns
 * {tickvals, ticktext}; {} without positive values. The rule of backend/figures/theme.log_ticks,
 * for the run page's client-side charts.
 */
export function logTicks(values) {
  let min = Number.POSITIVE_INFINITY;
  let max = 0;
  for (const v of values) {
    if (typeof v === "number" && v > 0 && Number.isFinite(v)) {
      if (v < min) min = v;
      if (v > max) max = v;
    }
  }
  if (!max) return {};
  const lo = min / 1.6;
  const hi = max * 1.6;
  const first = Math.floor(Math.log10(lo));
  const last = Math.ceil(Math.log10(hi));
  const mantissas = last - first > 3 ? [1] : [1, 2, 5];
  const ticks = [];
  for (let e = first; e <= last; e++) for (const m of mantissas) ticks.push(Number((m * 10 ** e).toPrecision(6)));
  const inside = ticks.filter((v) => v >= lo && v <= hi);
  const kept = inside.length ? inside : ticks;
  return { tickvals: kept, ticktext: kept.map((v) => String(v)) };
}

export function purge(div) {
  if (window.Plotly) window.Plotly.purge(div);
}
