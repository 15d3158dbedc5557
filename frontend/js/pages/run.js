// Run page: live curves through the metrics cursor, progress and ETA, variants, confusion
// matrix, downloads, spec, error and log tail, tags/notes, and "optimize this model".

import * as api from "../api.js";
import { renderCurves, renderFigure } from "../charts.js";
import { h, replace } from "../dom.js";
import * as fmt from "../format.js";
import { card, emptyState, errorState, loadingState, mountLayout, pageHeader, progressBar, statusBadge, table, toast } from "../layout.js";
import { poll } from "../poll.js";

const main = mountLayout("runs", "Run");
const match = window.location.pathname.match(/\/runs\/(\d+)/);
const runId = match ? Number(match[1]) : Number(new URLSearchParams(window.location.search).get("id"));

const state = { run: null, series: {}, lastStep: -1, variants: null, exports: ["float32", "dynamic", "float16", "int8"], confusionFor: null };
let poller = null;

// chart slots survive re-renders so Plotly keeps its zoom (uirevision)
const charts = {
  loss: h("div", { class: "chart", id: "chart-loss", role: "img", "aria-label": "Loss curves" }),
  accuracy: h("div", { class: "chart", id: "chart-accuracy", role: "img", "aria-label": "Accuracy curves" }),
  lr: h("div", { class: "chart", id: "chart-lr", role: "img", "aria-label": "Learning rate" }),
  other: h("div", { class: "chart", id: "chart-other", role: "img", "aria-label": "Other metrics" }),
  confusion: h("div", { class: "chart square", id: "chart-confusion", role: "img", "aria-label": "Confusion matrix" }),
};
const slots = {
  header: h("div"),
  overview: h("div"),
  failure: h("div"),
  charts: h("div", { class: "grid-2" },
    h("section", { class: "card chart-card" }, charts.loss),
    h("section", { class: "card chart-card" }, charts.accuracy),
    h("section", { class: "card chart-card" }, charts.lr),
    h("section", { class: "card chart-card", id: "other-card", hidden: true }, charts.other),
  ),
  variants: h("div"),
  confusion: h("div"),
  bottom: h("div", { class: "grid-2" }),
};

if (!Number.isInteger(runId) || runId < 1) {
  replace(main, errorState({ status: 404, message: "This address does not name a run." }));
} else {
  replace(main, loadingState(`Loading run #${runId}…`));
  start();
}

// ---- metric keys → charts --------------------------------------------------------------
// step markers, not curves
const NOT_CURVES = new Set(["epoch", "phase"]);

function groupKeys(keys) {
  const groups = { loss: [], accuracy: [], lr: [], other: [] };
  for (const key of keys.sort()) {
    if (NOT_CURVES.has(key)) continue;
    const k = key.toLowerCase();
    if (k.includes("loss")) groups.loss.push(key);
    else if (k.includes("acc")) groups.accuracy.push(key);
    else if (k === "lr" || k.includes("learning_rate")) groups.lr.push(key);
    else groups.other.push(key);
  }
  // train first, then validation, so colours pair up
  for (const g of Object.values(groups)) g.sort((a, b) => Number(a.startsWith("val_")) - Number(b.startsWith("val_")) || a.localeCompare(b));
  return groups;
}

function drawCurves() {
  const g = groupKeys(Object.keys(state.series));
  // an optimize run converts its parent's model: no training, so no curves to wait for
  // and a run that ended before logging anything has only its error and log to show
  const none = !Object.keys(state.series).length;
  slots.charts.hidden = Boolean(state.run && none && (state.run.kind === "optimize" || fmt.isTerminal(state.run.status)));
  if (slots.charts.hidden) return;
  const waiting = state.run && !fmt.isTerminal(state.run.status) ? "Waiting for the first points…" : "No points were logged";
  renderCurves(charts.loss, state.series, g.loss, { title: "Loss", yTitle: "loss", empty: waiting });
  renderCurves(charts.accuracy, state.series, g.accuracy, { title: "Accuracy", yTitle: "accuracy", empty: waiting });
  renderCurves(charts.lr, state.series, g.lr, { title: "Learning rate", yTitle: "learning rate", empty: "No learning-rate points logged" });
  const otherCard = document.getElementById("other-card");
  if (otherCard) otherCard.hidden = g.other.length === 0;
  if (g.other.length) renderCurves(charts.other, state.series, g.other, { title: "Other metrics", yTitle: "value" });
}

// Ask again from one step back: points of the same step may land in a later commit than the
// cursor's (batch points before epoch points); mergeSeries drops what is already there.
const cursor = () => Math.max(-1, state.lastStep - 1);

function mergeSeries(incoming) {
  let added = 0;
  for (const [key, s] of Object.entries(incoming || {})) {
    const cur = state.series[key] || (state.series[key] = { steps: [], values: [] });
    const last = cur.steps.length ? cur.steps[cur.steps.length - 1] : -Infinity;
    s.steps.forEach((step, i) => {
      if (step > last) {
        cur.steps.push(step);
        cur.values.push(s.values[i]);
        added += 1;
      }
    });
  }
  return added;
}

// ---- loading ---------------------------------------------------------------------------
async function start() {
  try {
    const [run, metrics] = await Promise.all([api.getRun(runId), api.getMetrics(runId, { afterStep: -1, maxPoints: 1000 })]);
    state.run = run;
    mergeSeries(metrics.series);
    state.lastStep = metrics.last_step ?? state.lastStep;
    replace(main, slots.header, slots.overview, slots.failure, slots.charts, slots.variants, slots.confusion, slots.bottom);
    renderAll();
    drawCurves();
    await loadVariants();
    if (!fmt.isTerminal(run.status)) startPolling();
  } catch (err) {
    replace(main, errorState(err, () => { replace(main, loadingState()); start(); }));
  }
}

function startPolling() {
  if (poller) poller.stop();
  poller = poll(
    async () => {
      const [run, metrics] = await Promise.all([api.getRun(runId), api.getMetrics(runId, { afterStep: cursor() })]);
      const statusChanged = run.status !== state.run.status || run.progress !== state.run.progress;
      state.run = run;
      const added = mergeSeries(metrics.series);
      if (metrics.last_step != null && metrics.last_step > state.lastStep) state.lastStep = metrics.last_step;
      if (added) drawCurves();
      if (statusChanged) renderAll();
      const done = fmt.isTerminal(run.status);
      if (done) {
        // one last pull: points written between the two requests above
        const tail = await api.getMetrics(runId, { afterStep: cursor() });
        if (mergeSeries(tail.series)) drawCurves();
        drawCurves(); // empty states switch from "waiting" to "none logged"
        await loadVariants();
        renderAll();
      }
      return { changed: Boolean(added) || statusChanged, done };
    },
    { min: 1000, max: 2000, onError: (e) => toast(e.message, "error") },
  );
}

async function loadVariants() {
  try {
    const res = await api.getVariants(runId);
    state.variants = res.data;
  } catch (err) {
    state.variants = err;
  }
  renderVariants();
  renderOverview();
}

// ---- rendering -------------------------------------------------------------------------
function renderAll() {
  renderHeader();
  renderOverview();
  renderFailure();
  renderBottom();
}

function renderHeader() {
  const run = state.run;
  document.title = `${run.name} · Run #${run.id} · optiboard`;
  const terminal = fmt.isTerminal(run.status);
  const actions = [
    !terminal ? h("button", { type: "button", class: "btn btn-danger", on: { click: () => act("Cancelled", () => api.cancelRun(run.id)) } }, "Cancel run") : null,
    run.status === "failed" || run.status === "cancelled"
      ? h("button", { type: "button", class: "btn", on: { click: () => act("Retry queued", () => api.retryRun(run.id), true) } }, "Retry")
      : null,
    h("a", { class: "btn", href: `/compare?runs=${run.id}${run.parent_run_id ? `,${run.parent_run_id}` : ""}` }, "Compare"),
    terminal ? h("button", { type: "button", class: "btn btn-danger", on: { click: remove } }, "Delete") : null,
  ];
  replace(
    slots.header,
    h("nav", { class: "muted", "aria-label": "Breadcrumb" }, h("a", { href: "/" }, "Runs"), ` / #${run.id}`),
    pageHeader(run.name, { subtitle: null, actions }),
    h(
      "p",
      { class: "subtitle" },
      statusBadge(run.status),
      "  ",
      run.summary || "",
      run.experiment ? ` · experiment ${run.experiment}` : "",
      run.kind === "optimize" && run.parent_run_id ? [" · optimizes ", h("a", { href: `/runs/${run.parent_run_id}` }, `run #${run.parent_run_id}`)] : "",
    ),
  );
}

function stat(label, value, extra) {
  return h("div", { class: "stat" }, h("div", { class: "label" }, label), h("div", { class: "value" }, value), extra || null);
}

/**
 * The model the run was made to produce (the server's headline rule: the last export of the
 * chain, int8 before float16 before dynamic before float32, Keras only when nothing else), named.
 */
function headlineStat(hl) {
  const explain = hl
    ? `${hl.format}: the deployable model of this run; every variant is listed below`
    : fmt.isTerminal(state.run.status) ? "this run produced no measured model" : "measured when training ends";
  return h(
    "div",
    { class: "stat stat-wide", id: "run-headline" },
    h("div", { class: "label" }, "Model to ship · format · size · gzip · p50 · accuracy"),
    h("div", { class: "value", dataset: { format: hl ? hl.format : "" } }, fmt.headlineText(hl)),
    h("div", { class: "muted" }, explain),
  );
}

function renderOverview() {
  const run = state.run;
  const hl = run.headline;
  const progress =
    run.status === "running" || run.status === "queued"
      ? h("div", { class: "stat", id: "run-progress" },
          h("div", { class: "label" }, run.status === "queued" ? "Queued — waiting for a worker" : `Progress · ETA ${fmt.duration(run.eta_seconds)}`),
          h("div", { class: "value" }, fmt.percent(run.progress)),
          progressBar(run.progress, "Run progress"))
      : stat("Duration", fmt.duration(run.duration_seconds));
  replace(
    slots.overview,
    h(
      "div",
      { class: "stats", id: "run-stats" },
      progress,
      headlineStat(hl),
      stat("Worker", run.worker || "–", h("div", { class: "muted" }, `attempt ${run.attempt ?? 1} of ${run.max_attempts ?? 1}`)),
      stat("Created", fmt.relative(run.created_at), h("div", { class: "muted" }, fmt.dateTime(run.created_at))),
    ),
  );
  slots.overview.classList.add("stack");
}

function renderFailure() {
  const run = state.run;
  if (run.status !== "failed" || !run.error) {
    replace(slots.failure);
    return;
  }
  replace(
    slots.failure,
    h("section", { class: "card", style: undefined }, h("h2", { class: "card-title" }, "Error"), h("pre", { class: "log", id: "run-error" }, run.error)),
  );
}

const VARIANT_COLUMNS = [
  { label: "Format", cell: (v) => h("span", { class: "mono" }, v.format) },
  { label: "Accuracy", num: true, cell: (v) => fmt.accuracy(v.accuracy) },
  { label: "Precision", num: true, cell: (v) => fmt.accuracy(v.precision) },
  { label: "Recall", num: true, cell: (v) => fmt.accuracy(v.recall) },
  { label: "F1", num: true, cell: (v) => fmt.accuracy(v.f1) },
  { label: "Size", num: true, cell: (v) => fmt.bytes(v.size_bytes) },
  { label: "Gzip", num: true, cell: (v) => fmt.bytes(v.gzip_bytes) },
  { label: "Params", num: true, cell: (v) => fmt.integer(v.params) },
  { label: "Sparsity", num: true, cell: (v) => fmt.percent(v.sparsity, 1) },
  { label: "p50", num: true, cell: (v) => fmt.ms(v.latency_p50_ms) },
  { label: "p95", num: true, cell: (v) => fmt.ms(v.latency_p95_ms) },
  { label: "Throughput", num: true, cell: (v) => (v.throughput_per_s ? `${fmt.integer(v.throughput_per_s)}/s` : "–") },
  { label: "Artifact", cell: (v) => h("a", { href: api.variantDownloadUrl(v), download: "" }, "Download") },
];

function renderVariants() {
  const v = state.variants;
  let content;
  if (v === null) content = loadingState("Loading variants…");
  else if (v instanceof Error) content = errorState(v, loadVariants);
  else if (!v.length)
    content = emptyState(
      fmt.isTerminal(state.run.status) ? "No models were produced" : "No models yet",
      fmt.isTerminal(state.run.status) ? "This run ended without a measured variant." : "Variants appear here when training ends and each export is measured.",
    );
  else content = table(VARIANT_COLUMNS, v, { caption: "Measured variants" });
  replace(slots.variants, card("Variants", content));
  renderConfusion();
  renderBottom();
}

async function renderConfusion() {
  const v = Array.isArray(state.variants) ? state.variants.filter((x) => x.confusion && x.confusion.length) : [];
  if (!v.length) {
    replace(slots.confusion);
    return;
  }
  if (!v.some((x) => x.id === state.confusionFor)) state.confusionFor = v[0].id;
  const select = h(
    "select",
    { id: "confusion-variant", on: { change: (e) => { state.confusionFor = Number(e.target.value); drawConfusion(); } } },
    v.map((x) => h("option", { value: x.id, selected: x.id === state.confusionFor }, x.format)),
  );
  replace(
    slots.confusion,
    h("section", { class: "card" },
      h("div", { class: "page-header" }, h("h2", { class: "card-title" }, "Confusion matrix"), h("label", {}, "Variant ", select)),
      charts.confusion),
  );
  drawConfusion();
}

async function drawConfusion() {
  try {
    const fig = await api.getConfusionFigure(state.confusionFor);
    // the card already says what this is
    fig.layout = { ...fig.layout, title: { text: "" }, margin: { ...(fig.layout.margin || {}), t: 8 } };
    renderFigure(charts.confusion, fig, { title: "Confusion matrix" });
  } catch (err) {
    replace(charts.confusion, errorState(err));
  }
}

function renderBottom() {
  const run = state.run;
  if (!run) return;
  const left = [];
  if (run.status === "succeeded" && run.kind === "train") left.push(optimizeCard(run));
  left.push(notesCard(run));
  const logLines = run.log_tail || [];
  const right = [
    card("Log tail", logLines.length ? h("pre", { class: "log", id: "run-log" }, logLines.join("\n")) : h("p", { class: "muted" }, "No log lines.")),
    h("section", { class: "card" }, h("details", {}, h("summary", {}, "Spec (validated JSON)"), h("pre", { class: "spec", id: "run-spec" }, JSON.stringify(run.spec, null, 2)))),
  ];
  // keep the user's half-typed notes: rebuild only when the editor is not focused
  if (slots.bottom.contains(document.activeElement)) return;
  replace(slots.bottom, h("div", { class: "stack" }, left), h("div", { class: "stack" }, right));
}

function optimizeCard(run) {
  const boxes = state.exports.map((e) => h("label", {}, h("input", { type: "checkbox", name: "export", value: e, checked: e === "int8" }), e));
  const name = h("input", { type: "text", id: "optimize-name", placeholder: `${run.name}-ptq`, maxlength: "200" });
  const error = h("p", { class: "field-error", role: "alert" });
  async function submit(e) {
    e.preventDefault();
    const exports = boxes.map((b) => b.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
    if (!exports.length) {
      error.textContent = "Pick at least one export format.";
      return;
    }
    try {
      const child = await api.optimizeRun(run.id, { exports, name: name.value.trim() || undefined });
      window.location.href = `/runs/${child.id}`;
    } catch (err) {
      error.textContent = err.message;
    }
  }
  return h(
    "section",
    { class: "card" },
    h("h2", { class: "card-title" }, "Optimize this model ", h("span", { class: "muted" }, "post-training quantization to TFLite")),
    h(
      "form",
      { id: "optimize-form", on: { submit } },
      h("fieldset", { class: "checks" }, h("legend", {}, "Exports"), boxes),
      h("div", { class: "field" }, h("label", { for: "optimize-name" }, "Name (optional)"), name),
      error,
      h("p", {}, h("button", { type: "submit", class: "btn btn-primary" }, "Launch optimization")),
    ),
  );
}

function notesCard(run) {
  const tags = h("input", { type: "text", id: "run-tags", value: (run.tags || []).join(", ") });
  const notes = h("textarea", { id: "run-notes", rows: "4" });
  notes.value = run.notes || "";
  const error = h("p", { class: "field-error", role: "alert" });
  async function save(e) {
    e.preventDefault();
    try {
      state.run = await api.updateRun(run.id, { tags: tags.value.split(",").map((t) => t.trim()).filter(Boolean), notes: notes.value });
      toast("Saved");
      document.activeElement?.blur();
      renderAll();
    } catch (err) {
      error.textContent = err.message;
    }
  }
  return h(
    "section",
    { class: "card" },
    h("h2", { class: "card-title" }, "Tags and notes"),
    h(
      "form",
      { on: { submit: save }, class: "stack" },
      h("div", { class: "field" }, h("label", { for: "run-tags" }, "Tags (comma-separated)"), tags),
      h("div", { class: "field" }, h("label", { for: "run-notes" }, "Notes"), notes),
      error,
      h("div", {}, h("button", { type: "submit", class: "btn" }, "Save")),
    ),
  );
}

async function act(label, fn, navigate = false) {
  try {
    const res = await fn();
    toast(label);
    if (navigate && res && res.id && res.id !== runId) {
      window.location.href = `/runs/${res.id}`;
      return;
    }
    state.run = await api.getRun(runId);
    renderAll();
    if (!fmt.isTerminal(state.run.status)) startPolling();
  } catch (err) {
    toast(err.message, "error");
  }
}

async function remove() {
  if (!window.confirm(`Delete run #${runId} “${state.run.name}” with its metrics and models?`)) return;
  try {
    await api.deleteRun(runId);
    window.location.href = "/";
  } catch (err) {
    toast(err.message, "error");
  }
}
