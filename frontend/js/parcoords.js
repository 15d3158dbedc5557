// The runs list's parallel-coordinates view (issue 19 item 4): GET /api/parcoords drawn as one
// Plotly `parcoords` trace; brushing axes selects runs for the compare page.
//
// parcoords draws its lines with WebGL through regl, whose code generation needs `eval`; the
// wheel's full bundle therefore fails under our CSP (script-src 'self'). lib/plotly-strict.min.js
// is plotly.js's "strict" bundle (npm plotly.js-strict-dist-min, the wheel's version) with regl's
// shaders precompiled: it runs under the CSP. 5 MB, so it is loaded only when the view is opened.

import { h } from "./dom.js";

export const STRICT_SRC = "/static/lib/plotly-strict.min.js";
const MAX_COMPARE = 200; // the compare page's limit (backend/api/routes/compare.py MAX_RUNS)

let loading = null;
/** Plotly's strict bundle, loaded once on demand. */
export function loadStrictPlotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const script = h("script", { src: STRICT_SRC });
      script.addEventListener("load", () => resolve(window.Plotly));
      script.addEventListener("error", () => reject(new Error(`Plotly.js did not load (${STRICT_SRC})`)));
      document.head.append(script);
    });
  }
  return loading;
}

/** The trace's dimensions for the API's columns and rows (backend/figures/parcoords.py). */
export function dimensions(table) {
  return table.columns.map((c, i) => {
    const values = table.rows.map((r) => r.values[i]);
    const dim = { label: c.label, values };
    if (c.kind === "ordinal") {
      dim.tickvals = c.ticks.map((_, k) => k);
      dim.ticktext = c.ticks;
      dim.range = [0, Math.max(1, c.ticks.length - 1)];
    } else if (c.key === "gzip_bytes") {
      dim.tickformat = "~s";
    } else if (c.key === "accuracy") {
      dim.tickformat = ".3f";
    } else {
      dim.tickformat = "~g";
    }
    return dim;
  });
}

/** Plotly's constraintrange as a list of [low, high] spans (it is one span or a list of them). */
function spans(range) {
  if (!Array.isArray(range) || !range.length) return null;
  return Array.isArray(range[0]) ? range : [range];
}

/**
 * The run ids whose value on every brushed dimension lies in one of its spans, ends included
 * (no brush: every run). `dims` are the trace's dimensions as Plotly keeps them (with
 * `constraintrange` once brushed).
 */
export function brushedRunIds(rows, dims) {
  const brushed = dims.map((d, i) => [i, spans(d.constraintrange)]).filter(([, s]) => s);
  return rows
    .filter((r) =>
      brushed.every(([i, s]) => r.values[i] != null && s.some(([lo, hi]) => lo <= r.values[i] && r.values[i] <= hi)),
    )
    .map((r) => r.run_id);
}

/** The compare page for these runs (null when there are none or more than it takes). */
export function compareHref(ids) {
  return ids.length && ids.length <= MAX_COMPARE ? `/compare?runs=${ids.join(",")}` : null;
}

let current = null; // the table drawn last and its listener: what a brush is read against

/** Draws the view into `div` and calls `onSelect(ids)` now and after every brush. */
export async function drawParcoords(div, table, onSelect) {
  const Plotly = await loadStrictPlotly();
  const acc = table.columns.findIndex((c) => c.key === "accuracy");
  const trace = {
    type: "parcoords",
    dimensions: dimensions(table),
    line:
      acc >= 0
        ? {
            color: table.rows.map((r) => r.values[acc]),
            colorscale: "Viridis",
            showscale: true,
            colorbar: { title: { text: "accuracy", side: "right" }, thickness: 12 },
          }
        : { color: "#2563eb" },
    labelangle: -20,
    labelside: "top",
  };
  const layout = {
    margin: { l: 70, r: 70, t: 90, b: 30 },
    height: 420,
    paper_bgcolor: "rgba(0,0,0,0)",
    font: { size: 12 },
  };
  await Plotly.react(div, [trace], layout, { displaylogo: false, responsive: true, modeBarButtons: [["toImage"]] });
  current = { table, onSelect };
  const report = () => current.onSelect(brushedRunIds(current.table.rows, div.data[0].dimensions));
  if (!div.dataset.brushing) {
    div.dataset.brushing = "1";
    div.on("plotly_restyle", report);
  }
  report();
}
