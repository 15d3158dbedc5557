// Compare page: the selection lives in the query string (/compare?runs=1,2,3&baseline=1&x=…).
// The server builds the three figures (backend/figures); this page renders them, the table
// with deltas against the baseline, and the export links.

import * as api from "../api.js";
import { loadPlotly, purge, renderFigure } from "../charts.js";
import { h, replace } from "../dom.js";
import * as fmt from "../format.js";
import { allTracesToggle, differencesTable, groupBaselineNote, groupTable } from "../groups.js";
import { card, emptyState, errorState, loadingState, mountLayout, pageHeader, table } from "../layout.js";
import { VOCAB } from "../vocabulary.js";

// the x axes the server can draw (runspec/vocabulary.py), labelled by their title's first part
const X_AXES = Object.entries(VOCAB.x_axes).map(([key, title]) => ({ key, label: title.split(" (")[0] }));

const main = mountLayout("compare", "Compare");
const params = new URLSearchParams(window.location.search);
const state = {
  runs: (params.get("runs") || "")
    .split(",")
    .map((s) => Number(s.trim()))
    .filter((n) => Number.isInteger(n) && n > 0),
  baseline: Number(params.get("baseline")) || null,
  x: X_AXES.some((a) => a.key === params.get("x")) ? params.get("x") : "size_bytes",
  // whose latency and memory figures: the training worker's own, or a device label (issue 18)
  device: params.get("device") || VOCAB.own_device,
  // which value of each logged series (issue 19 item 4): best epoch (default), last, min, max
  summary: VOCAB.summaries?.[params.get("summary")] ? params.get("summary") : VOCAB.default_summary || "best",
  // spec columns shown (null: none yet) and the sort
  cols: params.has("cols") ? new Set(params.get("cols").split(",").filter(Boolean)) : null,
  sort: params.get("sort") || "",
  // seed groups (issue 19 item 1): runs that differ only by seed, as means with 95 % intervals
  groups: params.get("groups") === "1",
  data: null,
  candidates: [],
};
state.runs = [...new Set(state.runs)];

// colour a ratio or delta only when it is a real difference, not measurement noise
const better = (v, { lowIsGood, tol }) =>
  v == null || Math.abs(v - (lowIsGood ? 1 : 0)) <= tol ? undefined : (lowIsGood ? v < 1 : v > 0) ? "pos" : "neg";

const figs = {
  tradeoff: h("div", {
    class: "chart tall",
    id: "fig-tradeoff",
    role: "img",
    "aria-label": "Accuracy against the chosen cost, with the Pareto front",
  }),
  latency: h("div", {
    class: "chart tall",
    id: "fig-latency",
    role: "img",
    "aria-label": "Latency p50 with p95 whiskers",
  }),
  loss: h("div", { class: "chart", id: "fig-loss", role: "img", "aria-label": "Loss curves overlaid" }),
};
const slots = { selection: h("div", { class: "card" }), controls: h("div"), body: h("div", { class: "stack" }) };
replace(
  main,
  pageHeader("Compare", { subtitle: "Accuracy, size and latency of the selected runs, side by side." }),
  slots.selection,
  h("div", { class: "stack" }, slots.controls, slots.body),
);

function syncUrl() {
  const p = new URLSearchParams();
  if (state.runs.length) p.set("runs", state.runs.join(","));
  if (state.baseline && state.runs.includes(state.baseline)) p.set("baseline", String(state.baseline));
  if (state.x !== "size_bytes") p.set("x", state.x);
  if (state.device !== VOCAB.own_device) p.set("device", state.device);
  if (state.summary !== (VOCAB.default_summary || "best")) p.set("summary", state.summary);
  if (state.cols) p.set("cols", [...state.cols].join(","));
  if (state.sort) p.set("sort", state.sort);
  if (state.groups) p.set("groups", "1");
  const qs = p.toString().replace(/%2C/g, ",");
  history.replaceState(null, "", qs ? `/compare?${qs}` : "/compare");
}

// ---- selection -------------------------------------------------------------------------
async function loadCandidates() {
  try {
    const res = await api.listRuns({ status: "succeeded", sort: "-created_at", limit: 200 });
    state.candidates = res.data;
  } catch {
    state.candidates = [];
  }
  renderSelection();
}

function nameOf(id) {
  const r = (state.data && state.data.runs.find((x) => x.id === id)) || state.candidates.find((x) => x.id === id);
  return r ? r.name : "";
}

function renderSelection() {
  const chips = state.runs.map((id) =>
    h(
      "span",
      { class: "chip" },
      `#${id} ${nameOf(id)}`,
      h(
        "button",
        {
          type: "button",
          "aria-label": `Remove run ${id} from the comparison`,
          on: { click: () => setRuns(state.runs.filter((r) => r !== id)) },
        },
        "×",
      ),
    ),
  );
  const available = state.candidates.filter((r) => !state.runs.includes(r.id));
  const add = h(
    "select",
    {
      "aria-label": "Add a run to the comparison",
      id: "add-run",
      on: {
        change: (e) => {
          if (e.target.value) setRuns([...state.runs, Number(e.target.value)]);
        },
      },
    },
    h("option", { value: "" }, available.length ? "Add a finished run…" : "No other finished runs"),
    available.map((r) => h("option", { value: r.id }, `#${r.id} ${r.name} — ${r.summary || r.experiment || ""}`)),
  );
  replace(
    slots.selection,
    h(
      "div",
      { class: "selection" },
      h("strong", {}, "Runs: "),
      chips.length ? chips : h("span", { class: "muted" }, "none selected"),
      add,
    ),
  );
}

function setRuns(ids) {
  state.runs = [...new Set(ids)];
  if (!state.runs.includes(state.baseline)) state.baseline = null;
  syncUrl();
  renderSelection();
  load();
}

// ---- data ------------------------------------------------------------------------------
const deviceParam = () => (state.device === VOCAB.own_device ? undefined : state.device);
const deviceName = (d) => (d === VOCAB.own_device ? "this worker" : d);

let inflight = null;
async function load() {
  if (!state.runs.length) {
    for (const d of Object.values(figs)) purge(d);
    replace(slots.controls);
    replace(
      slots.body,
      emptyState(
        "Pick runs to compare",
        "Select runs on the Runs page and press Compare, or add finished runs above. The selection is kept in the address, so you can share it.",
        h("a", { class: "btn", href: "/" }, "Go to Runs"),
      ),
    );
    return;
  }
  if (inflight) inflight.abort();
  inflight = new AbortController();
  if (!state.data) replace(slots.body, loadingState("Building the comparison…"));
  try {
    // the request goes first: the server builds the figures while the browser evaluates Plotly
    const request = api.getCompare(
      {
        runs: state.runs,
        baseline: state.baseline || undefined,
        x: state.x,
        device: deviceParam(),
        summary: state.summary,
        groups: state.groups || undefined,
      },
      { signal: inflight.signal },
    );
    const [data] = await Promise.all([request, loadPlotly()]);
    state.data = data;
    render();
    renderSelection();
  } catch (err) {
    if (err.name === "AbortError") return;
    state.data = null;
    replace(slots.controls);
    replace(slots.body, errorState(err, load));
  }
}

// ---- rendering -------------------------------------------------------------------------
function renderControls() {
  const { runs, rows } = state.data;
  // the server's choice when the user made none; only runs with a measured model can be one
  const baseline = state.baseline || state.data.baseline?.run_id || (runs[0] && runs[0].id);
  const measured = new Set(rows.filter((r) => r.variant_id != null).map((r) => r.run_id));
  const baselineSelect = h(
    "select",
    {
      id: "baseline",
      on: {
        change: (e) => {
          state.baseline = Number(e.target.value);
          syncUrl();
          load();
        },
      },
    },
    runs.map((r) =>
      h(
        "option",
        { value: r.id, selected: r.id === baseline, disabled: !measured.has(r.id) },
        `#${r.id} ${r.name}${measured.has(r.id) ? "" : " (no measured model)"}`,
      ),
    ),
  );
  const xSwitch = h(
    "div",
    { class: "segmented", role: "group", "aria-label": "x axis of the trade-off plot" },
    X_AXES.map((a) =>
      h(
        "button",
        {
          type: "button",
          "aria-pressed": a.key === state.x ? "true" : "false",
          dataset: { x: a.key },
          on: {
            click: () => {
              state.x = a.key;
              syncUrl();
              load();
            },
          },
        },
        a.label,
      ),
    ),
  );
  const devices = state.data.devices || [VOCAB.own_device];
  const deviceSwitch = h(
    "div",
    { class: "segmented", role: "group", "aria-label": "whose latency and memory measurements", id: "device-switch" },
    devices.map((d) =>
      h(
        "button",
        {
          type: "button",
          "aria-pressed": d === state.device ? "true" : "false",
          dataset: { device: d },
          title:
            d === VOCAB.own_device
              ? "as the worker that trained each run measured it"
              : `as measured on a worker started with --device ${d}`,
          on: {
            click: () => {
              state.device = d;
              syncUrl();
              load();
            },
          },
        },
        deviceName(d),
      ),
    ),
  );
  const exportParams = {
    runs: state.runs,
    baseline: state.baseline || undefined,
    x: state.x,
    device: deviceParam(),
    summary: state.summary,
    groups: state.groups || undefined,
  };
  const summarySelect = h(
    "select",
    {
      id: "summary",
      title: "Which value of each logged metric the table, the exports and an external run's accuracy show",
      on: {
        change: (e) => {
          state.summary = e.target.value;
          syncUrl();
          load();
        },
      },
    },
    Object.entries(VOCAB.summaries || {}).map(([key, text]) =>
      h("option", { value: key, selected: key === state.summary, title: text }, SUMMARY_OPTION[key] || key),
    ),
  );
  const shown = specColumnsShown();
  const columnChooser = h(
    "details",
    { class: "key-chooser", id: "column-chooser" },
    h("summary", {}, `Columns: +${shown.size}`),
    h(
      "div",
      { class: "key-panel", role: "group", "aria-label": "Logged-metric and spec columns to show" },
      SPEC_COLUMNS.map((c) =>
        h(
          "label",
          { class: "check key", dataset: { col: c.key } },
          h("input", {
            type: "checkbox",
            checked: shown.has(c.key),
            on: {
              change: (e) => {
                state.cols = new Set(specColumnsShown());
                if (e.target.checked) state.cols.add(c.key);
                else state.cols.delete(c.key);
                syncUrl();
                render();
                document.getElementById("column-chooser").open = true;
              },
            },
          }),
          ` ${c.label}`,
        ),
      ),
    ),
  );
  replace(
    slots.controls,
    h(
      "div",
      { class: "toolbar" },
      h("label", { for: "baseline" }, "Baseline"),
      baselineSelect,
      h("span", { class: "toolbar-group" }, h("span", { class: "muted" }, "x axis"), xSwitch),
      devices.length > 1
        ? h("span", { class: "toolbar-group" }, h("span", { class: "muted" }, "latency measured on"), deviceSwitch)
        : null,
      h("span", { class: "toolbar-group" }, h("label", { for: "summary" }, "Logged metrics"), summarySelect),
      h(
        "label",
        {
          class: "check",
          title: "Runs that differ only by seed as one row each: mean with its 95 % confidence interval",
        },
        h("input", {
          type: "checkbox",
          id: "group-seeds",
          checked: state.groups,
          on: {
            change: (e) => {
              state.groups = e.target.checked;
              syncUrl();
              load();
            },
          },
        }),
        " Seed groups",
      ),
      columnChooser,
      h("span", { class: "grow" }),
      h("span", { class: "muted" }, "Export"),
      h(
        "a",
        { class: "btn btn-sm", id: "export-csv", href: api.compareExportUrl("csv", exportParams), download: "" },
        "CSV",
      ),
      h(
        "a",
        { class: "btn btn-sm", id: "export-json", href: api.compareExportUrl("json", exportParams), download: "" },
        "JSON",
      ),
      h(
        "a",
        { class: "btn btn-sm", id: "export-html", href: api.compareExportUrl("html", exportParams), download: "" },
        "HTML report",
      ),
    ),
  );
}

const COLUMNS = [
  {
    label: "Run",
    cls: "run-cell",
    cell: (r) => [
      h("a", { href: `/runs/${r.run_id}`, title: r.run_name }, r.run_name),
      h("span", { class: "muted" }, ` #${r.run_id}`),
    ],
  },
  { label: "Format", cell: (r) => h("span", { class: "mono" }, fmt.modelFormat(r.format)) },
  {
    label: "Technique · recipe",
    cls: "technique-cell",
    cell: (r) => [h("div", {}, r.technique || "baseline"), h("div", { class: "muted recipe" }, recipeText(r))],
  },
  { key: "accuracy", label: "Accuracy", num: true, cell: (r) => fmt.accuracy(r.accuracy) },
  {
    label: "Δ accuracy",
    num: true,
    cell: (r) =>
      h("span", { class: better(r.delta_accuracy, { lowIsGood: false, tol: 0.0005 }) }, fmt.signed(r.delta_accuracy)),
  },
  { label: "F1", num: true, cell: (r) => fmt.accuracy(r.f1) },
  { key: "size_bytes", label: "Size", num: true, cell: (r) => fmt.bytes(r.size_bytes) },
  {
    label: "Size ×",
    num: true,
    cell: (r) => h("span", { class: better(r.size_ratio, { lowIsGood: true, tol: 0.02 }) }, fmt.ratio(r.size_ratio)),
  },
  { label: "Gzip", num: true, cell: (r) => fmt.bytes(r.gzip_bytes) },
  { label: "Params", num: true, cell: (r) => fmt.integer(r.params) },
  { label: "p50", num: true, cell: (r) => fmt.ms(r.latency_p50_ms) },
  {
    label: "p90",
    num: true,
    title: "90th percentile, the headline latency (p95 and p99 are in the exports)",
    // the protocol's guard: a spread it could not settle is not shown as a clean number
    cell: (r) =>
      r.latency_unstable
        ? h("span", { class: "neg", title: "unstable: machine busy" }, `${fmt.ms(r.latency_p90_ms)}*`)
        : fmt.ms(r.latency_p90_ms),
  },
  {
    label: "Latency ×",
    num: true,
    cell: (r) =>
      h("span", { class: better(r.latency_ratio, { lowIsGood: true, tol: 0.1 }) }, fmt.ratio(r.latency_ratio)),
  },
  {
    label: "Pareto",
    title: "On the Pareto front: no other variant is both smaller and more accurate",
    cell: (r) => (r.pareto ? h("span", { title: "No other variant is both smaller and more accurate" }, "✓") : ""),
  },
];

// A technique run against its same-budget control (backend/figures/table.py vs_control): the
// control's model of the same format, so the difference is the technique's, net of extra training.
const CONTROL_COLUMN = {
  key: "vs_control_accuracy",
  label: "vs control",
  num: true,
  cls: "control-cell",
  title:
    "Against the run's same-budget control (the same model trained as many epochs without the technique): " +
    "accuracy difference in points, and gzip size ratio",
  cell: (r) => {
    if (r.vs_control_accuracy == null) return r.control_run_id ? h("span", { class: "muted" }, "control pending") : "";
    const points = 100 * r.vs_control_accuracy;
    return h(
      "span",
      {
        title:
          `vs ${fmt.modelFormat(r.control_format)} of control run #${r.control_run_id}: ` +
          `accuracy ${points >= 0 ? "+" : ""}${points.toFixed(2)} points, macro F1 ${fmt.signed(r.vs_control_f1)}, ` +
          `size ${fmt.ratio(r.vs_control_size_ratio)}, gzip ${fmt.ratio(r.vs_control_gzip_ratio)}`,
        dataset: { control: r.control_run_id },
      },
      h(
        "div",
        { class: better(r.vs_control_accuracy, { lowIsGood: false, tol: 0.0005 }) },
        `${points >= 0 ? "+" : "−"}${Math.abs(points).toFixed(2)} pt`,
      ),
      h("div", { class: "muted" }, `gz ${fmt.ratio(r.vs_control_gzip_ratio)}`),
    );
  },
};

// Spec values as columns (backend/figures/table.py recipe_columns): shown, sorted, exported.
const SPEC_COLUMNS = [
  { key: "logged_val_accuracy", label: "Val acc", num: true },
  { key: "logged_val_loss", label: "Val loss", num: true },
  { key: "learning_rate", label: "Learning rate", num: true },
  { key: "batch_size", label: "Batch", num: true },
  { key: "epochs", label: "Epochs", num: true },
  { key: "width_multiplier", label: "Width", num: true },
  { key: "spec_target_sparsity", label: "Sparsity", num: true },
  { key: "spec_number_of_clusters", label: "Clusters", num: true },
  { key: "spec_temperature", label: "Temperature", num: true },
  { key: "spec_alpha", label: "α", num: true },
  { key: "spec_seed", label: "Seed", num: true },
  { key: "spec_architecture", label: "Architecture" },
  { key: "spec_dataset", label: "Dataset" },
  { key: "optimizer", label: "Optimizer" },
];

/** The spec columns to show: the user's choice (none at first: the recipe line under each
 * technique already names the values, and the table must fit 1280 px). */
function specColumnsShown() {
  return state.cols || new Set();
}

const SUMMARY_OPTION = { best: "best validation epoch", last: "last value", min: "minimum", max: "maximum" };
const SUMMARY_WORD = { best: "best", last: "last", min: "min", max: "max" };

/** The table's columns: the fixed ones, then the chosen logged-metric and spec columns (none
 * at first, so the table fits 1280 px; the recipe line already names the spec values). */
function columns(rows = []) {
  const word = SUMMARY_WORD[state.summary] || state.summary;
  const shown = specColumnsShown();
  const extra = SPEC_COLUMNS.filter((c) => shown.has(c.key)).map((c) => {
    const isLogged = c.key.startsWith("logged_");
    return {
      ...c,
      label: isLogged ? `${c.label} (${word})` : c.label,
      title: isLogged
        ? `${c.key.slice(7)} as logged in training: ${VOCAB.summaries?.[state.summary] || ""}`
        : undefined,
      cls: "spec-cell",
      cell: (r) => {
        const v = r[c.key];
        if (v == null) return "";
        if (c.key.endsWith("accuracy")) return fmt.accuracy(v);
        return c.num ? fmt.number(v) : String(v);
      },
    };
  });
  // "vs control" only when a compared run has a same-budget control (keeps 1280 px otherwise)
  const control = rows.some((r) => r.control_run_id) ? [CONTROL_COLUMN] : [];
  return [...COLUMNS.slice(0, 5), ...control, ...COLUMNS.slice(5), ...extra].map(sortable);
}

/** A column whose header sorts the rows by it (click again: the other way); nulls last. */
function sortable(c) {
  if (!c.key) return c;
  const dir = state.sort === c.key ? "asc" : state.sort === `-${c.key}` ? "desc" : null;
  const label = h(
    "button",
    {
      type: "button",
      class: "th-sort",
      dataset: { sort: c.key },
      "aria-label": `Sort by ${c.label}`,
      on: {
        click: () => {
          state.sort = dir === "desc" ? c.key : `-${c.key}`;
          syncUrl();
          render();
        },
      },
    },
    c.label,
    dir ? (dir === "asc" ? " ▲" : " ▼") : "",
  );
  return { ...c, label, ariaSort: dir ? (dir === "asc" ? "ascending" : "descending") : undefined };
}

function sortedRows(rows) {
  if (!state.sort) return rows;
  const key = state.sort.replace(/^-/, "");
  const sign = state.sort.startsWith("-") ? -1 : 1;
  return [...rows].sort((a, b) => {
    const x = a[key];
    const y = b[key];
    if (x == null || y == null) return (x == null) - (y == null);
    return sign * (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y)));
  });
}

/** "adam lr 0.001 · batch 32 · width 0.5 · pruning target_sparsity=0.8 epochs=2" */
function recipeText(r) {
  const parts = [];
  if (r.learning_rate != null) parts.push(`${r.optimizer || ""} lr ${r.learning_rate}`.trim());
  if (r.batch_size != null) parts.push(`batch ${r.batch_size}`);
  if (r.width_multiplier != null && r.width_multiplier !== 1) parts.push(`width ${r.width_multiplier}`);
  if (r.technique_settings) parts.push(r.technique_settings);
  return parts.join(" · ");
}

function baselineNote(rows, runs) {
  const ref = rows.find((r) => r.baseline_run_id != null);
  if (!ref) return null;
  const run = runs.find((x) => x.id === ref.baseline_run_id);
  return h(
    "p",
    { class: "muted", id: "compare-baseline" },
    `Δ and × against the baseline #${ref.baseline_run_id} ${run ? run.name : ""} · ${fmt.modelFormat(ref.baseline_format)}; latency × against its model of the same runtime (TFLite with TFLite, Keras with Keras). Latencies as measured on ${deviceName(state.device)}.`,
  );
}

function render() {
  renderControls();
  const { rows, figures, runs } = state.data;
  const notDone = runs.filter((r) => r.status !== "succeeded");
  replace(
    slots.body,
    notDone.length
      ? h(
          "div",
          { class: "banner banner-info" },
          `${notDone.length} of the selected runs have not succeeded (${notDone.map((r) => `#${r.id} ${r.status}`).join(", ")}); they add curves but no variants.`,
        )
      : null,
    h("section", { class: "card chart-card" }, figs.tradeoff),
    h("section", { class: "card chart-card" }, figs.latency),
    h(
      "section",
      { class: "card chart-card" },
      state.data.groups ? h("div", { class: "toolbar" }, allTracesToggle(figs.loss, window.Plotly)) : null,
      figs.loss,
    ),
    state.data.groups
      ? card(`Seed groups (${state.data.groups.rows.length})`, [
          groupBaselineNote(state.data.groups),
          groupTable(state.data.groups),
        ])
      : null,
    state.data.groups ? card("Differences against the baseline group", differencesTable(state.data.groups)) : null,
    card(
      `Variants (${rows.length})`,
      rows.length
        ? [
            baselineNote(rows, runs),
            table(columns(rows), sortedRows(rows), {
              caption: "Variants with deltas against the baseline",
              id: "compare-table",
              cls: "compact",
              // an external run's logged accuracy has no size: neither on the front nor dominated
              rowClass: (r) => (r.format === "logged" ? "logged" : r.pareto ? "front" : "dominated"),
            }),
          ]
        : emptyState("No measured variants", "The selected runs have not produced models yet."),
    ),
  );
  const draw = (div, fig, opts) => {
    const start = performance.now();
    renderFigure(div, fig, opts);
    performance.measure(`draw ${div.id}`, { start }); // read by bench/dashboard.py
  };
  draw(figs.tradeoff, figures.tradeoff, { title: "Accuracy vs size", empty: "No measured variants to plot yet" });
  draw(figs.latency, figures.latency, { title: "Latency", empty: "No latency measurements yet" });
  draw(figs.loss, figures.loss, { title: "Loss", empty: "No loss points logged yet" });
  for (const div of [figs.tradeoff, figs.latency]) {
    if (!div.dataset.linked) {
      div.dataset.linked = "1";
      div.on("plotly_click", (ev) => {
        const point = ev.points && ev.points[0];
        const runId = point && point.customdata && point.customdata[0];
        if (runId) window.location.href = `/runs/${runId}`;
      });
    }
  }
}

renderSelection();
loadCandidates();
load();
