// Run page: live curves through the metrics cursor, progress and ETA, variants, confusion
// matrix, downloads, spec, error and log tail, tags/notes, and "optimize this model".

import * as api from "../api.js";
import { renderCurves, renderFigure, renderSystem } from "../charts.js";
import {
  constantValue,
  defaultKeys,
  epochAnchors,
  groupKeys,
  isCurveKey,
  isSystemKey,
  legendName,
  NOT_CURVES,
  phases,
} from "../curves.js";
import { mountDevices } from "../devices.js";
import { debounce, h, replace } from "../dom.js";
import * as fmt from "../format.js";
import {
  card,
  emptyState,
  errorState,
  loadingState,
  mountLayout,
  pageHeader,
  progressBar,
  statusBadge,
  table,
  toast,
} from "../layout.js";
import { costDetails, latencyCell, memoryCell } from "../measurement.js";
import { poll } from "../poll.js";
import { VOCAB } from "../vocabulary.js";

const main = mountLayout("runs", "Run");
const match = window.location.pathname.match(/\/runs\/(\d+)/);
const runId = match ? Number(match[1]) : Number(new URLSearchParams(window.location.search).get("id"));

const params = new URLSearchParams(window.location.search);
const state = {
  run: null,
  series: {},
  lastStep: -1,
  variants: null,
  agreement: null, // a distilled run's teacher–student figures: { top1, kl }, once recorded
  netEffect: null, // this run's seed group against its same-budget controls: group rows, once measured
  exports: VOCAB.export_formats,
  confusionFor: null,
  costFor: null, // the variant whose per-op cost is shown
  keys: new Set(), // every metric key the run has logged (discovered cheaply, see probeKeys)
  chosen: new Set(), // the keys plotted
  userChose: false, // until the user picks keys, the usual training curves are plotted
  times: null, // (step, wall time) anchors, fetched when a time axis is chosen
  // system/ samples (step = seconds since the job started): their own series and cursor
  system: { series: {}, lastStep: -1 },
  // the view is display only and lives in the address: ?smooth=0.6&x=epoch&logy=1
  view: {
    smoothing: Math.min(0.99, Math.max(0, Number(params.get("smooth")) || 0)),
    logY: params.get("logy") === "1",
    axis: VOCAB.run_chart_x_axes[params.get("x")] ? params.get("x") : "step",
  },
};
let poller = null;

// chart slots survive re-renders so Plotly keeps its zoom (uirevision)
const charts = {
  loss: h("div", { class: "chart", id: "chart-loss", role: "img", "aria-label": "Loss curves" }),
  accuracy: h("div", { class: "chart", id: "chart-accuracy", role: "img", "aria-label": "Accuracy curves" }),
  lr: h("div", { class: "chart", id: "chart-lr", role: "img", "aria-label": "Learning rate" }),
  other: h("div", { class: "chart", id: "chart-other", role: "img", "aria-label": "Other metrics" }),
  system: h("div", { class: "chart", id: "chart-system", role: "img", "aria-label": "CPU and memory of the job" }),
  confusion: h("div", { class: "chart square", id: "chart-confusion", role: "img", "aria-label": "Confusion matrix" }),
};
const slots = {
  header: h("div"),
  overview: h("div"),
  failure: h("div"),
  chartControls: h("div", { class: "chart-controls", id: "chart-controls" }),
  charts: h(
    "div",
    { class: "grid-2" },
    h("section", { class: "card chart-card", id: "loss-card" }, charts.loss),
    h("section", { class: "card chart-card", id: "accuracy-card" }, charts.accuracy),
    h("section", { class: "card chart-card", id: "lr-card", hidden: true }, charts.lr),
    h("section", { class: "card chart-card", id: "other-card", hidden: true }, charts.other),
    h("section", { class: "card chart-card", id: "system-card", hidden: true }, charts.system),
  ),
  variants: h("div"),
  cost: h("div"),
  devices: h("div"),
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
const CURVE_CHARTS = ["loss", "accuracy", "lr", "other"];

function chosenKeys() {
  return [...state.chosen].filter((k) => state.series[k] && state.series[k].steps.length);
}

function view() {
  const run = state.run;
  return {
    ...state.view,
    axisTitle: VOCAB.run_chart_x_axes[state.view.axis] || "Step (training batch)",
    anchors: { epochs: epochAnchors(state.series), times: state.times },
    name: (key) => legendName(key, run),
    phases: phases(state.series, run),
  };
}

function drawCurves() {
  const g = groupKeys(chosenKeys());
  // an optimize run converts its parent's model: no training, so no curves to wait for
  // and a run that ended before logging anything has only its error and log to show
  const none = !Object.keys(state.series).some(isCurveKey);
  const hide = Boolean(state.run && none && (state.run.kind === "optimize" || fmt.isTerminal(state.run.status)));
  slots.charts.hidden = hide;
  slots.chartControls.hidden = hide;
  if (hide) return;
  renderControls();
  const terminal = state.run && fmt.isTerminal(state.run.status);
  const waiting = terminal ? "No points were logged" : "Waiting for the first points…";
  const v = view();
  // a constant learning rate is one number: said in the controls, not drawn as a flat line
  const lrConstant = g.lr.length > 0 && g.lr.every((k) => constantValue(state.series[k]) !== null);
  const show = {
    loss: g.loss.length > 0 || (!terminal && !g.accuracy.length),
    accuracy: g.accuracy.length > 0 || (!terminal && !g.loss.length),
    lr: g.lr.length > 0 && !lrConstant,
    other: g.other.length > 0,
  };
  const titles = {
    loss: ["Loss", "loss"],
    accuracy: ["Accuracy", "accuracy"],
    lr: ["Learning rate", "learning rate"],
    other: ["Other metrics", "value"],
  };
  for (const name of CURVE_CHARTS) {
    const cardEl = charts[name].parentElement;
    if (cardEl) cardEl.hidden = !show[name];
    if (show[name])
      renderCurves(charts[name], state.series, g[name], {
        title: titles[name][0],
        yTitle: titles[name][1],
        empty: waiting,
        view: v,
      });
  }
  syncZoom();
}

// zoom on one chart zooms the others (same x axis); double-click resets them all
let syncing = false;
function syncZoom() {
  for (const name of CURVE_CHARTS) {
    const div = charts[name];
    if (div.dataset.synced || !div.on) continue;
    div.dataset.synced = "1";
    div.on("plotly_relayout", (ev) => {
      if (syncing) return;
      const update = {};
      if ("xaxis.range[0]" in ev) update["xaxis.range"] = [ev["xaxis.range[0]"], ev["xaxis.range[1]"]];
      else if (Array.isArray(ev["xaxis.range"])) update["xaxis.range"] = ev["xaxis.range"];
      else if (ev["xaxis.autorange"]) update["xaxis.autorange"] = true;
      else return;
      syncing = true;
      const others = CURVE_CHARTS.map((n) => charts[n]).filter(
        (d) => d !== div && d.data && d.data.length && !d.parentElement.hidden,
      );
      Promise.all(others.map((d) => window.Plotly.relayout(d, update))).finally(() => {
        syncing = false;
      });
    });
  }
}

function syncViewUrl() {
  const p = new URLSearchParams(window.location.search);
  const set = (k, v, dflt) => (v === dflt ? p.delete(k) : p.set(k, String(v)));
  set("smooth", state.view.smoothing, 0);
  set("logy", state.view.logY ? 1 : 0, 0);
  set("x", state.view.axis, "step");
  const qs = p.toString();
  history.replaceState(null, "", `${window.location.pathname}${qs ? `?${qs}` : ""}`);
}

async function setAxis(axis) {
  state.view.axis = axis;
  syncViewUrl();
  if ((axis === "relative" || axis === "wall") && !state.times) await loadTimes();
  drawCurves();
}

/** (step, wall time) anchors from the points of one plotted key. */
async function loadTimes() {
  const key = chosenKeys().find((k) => !k.startsWith("val_")) || chosenKeys()[0] || [...state.keys][0];
  if (!key) return;
  try {
    state.times = await api.getMetricTimes(runId, key);
  } catch (err) {
    toast(err.message, "error");
  }
}

const controls = {};
function renderControls() {
  if (!controls.smoothing) {
    const smoothingLabel = h("output", { id: "smoothing-value", for: "smoothing" });
    controls.smoothingLabel = smoothingLabel;
    controls.smoothing = h("input", {
      type: "range",
      id: "smoothing",
      min: "0",
      max: "0.99",
      step: "0.01",
      value: String(state.view.smoothing),
      "aria-describedby": "smoothing-help",
      on: {
        input: (e) => {
          state.view.smoothing = Number(e.target.value);
          smoothingLabel.textContent = state.view.smoothing.toFixed(2);
          syncViewUrl();
          drawCurves();
        },
      },
    });
    controls.logY = h("input", {
      type: "checkbox",
      id: "log-y",
      checked: state.view.logY,
      on: {
        change: (e) => {
          state.view.logY = e.target.checked;
          syncViewUrl();
          drawCurves();
        },
      },
    });
    controls.axis = h(
      "select",
      { id: "x-axis", "aria-label": "x axis", on: { change: (e) => setAxis(e.target.value) } },
      Object.entries(VOCAB.run_chart_x_axes).map(([key, title]) =>
        h("option", { value: key, selected: key === state.view.axis }, title),
      ),
    );
    controls.keysSummary = h("summary", {}, "Keys");
    controls.keyFilter = h("input", {
      type: "search",
      id: "key-filter",
      placeholder: "Filter keys…",
      "aria-label": "Filter metric keys",
      on: { input: debounce(renderKeyList, 150) },
    });
    controls.keyList = h("div", {
      class: "key-list",
      id: "key-list",
      role: "group",
      "aria-label": "Metric keys to plot",
    });
    controls.note = h("span", { class: "muted", id: "chart-note" });
    replace(
      slots.chartControls,
      h(
        "div",
        { class: "toolbar" },
        h("label", { for: "smoothing" }, "Smoothing"),
        controls.smoothing,
        smoothingLabel,
        h(
          "span",
          { id: "smoothing-help", class: "sr-only" },
          "Exponential moving average of the drawn curves, display only",
        ),
        h("label", { class: "check" }, controls.logY, " Log y"),
        h("label", { for: "x-axis" }, "x axis"),
        controls.axis,
        h(
          "details",
          { class: "key-chooser", id: "key-chooser" },
          controls.keysSummary,
          h("div", { class: "key-panel" }, controls.keyFilter, controls.keyList),
        ),
        h("span", { class: "grow" }),
        controls.note,
      ),
    );
    smoothingLabel.textContent = state.view.smoothing.toFixed(2);
  }
  // what the axes can offer: epochs need the run's epoch points
  const hasEpochs = Boolean(epochAnchors(state.series));
  for (const opt of controls.axis.options) {
    if (opt.value === "epoch") {
      opt.disabled = !hasEpochs;
      opt.textContent = hasEpochs ? VOCAB.run_chart_x_axes.epoch : `${VOCAB.run_chart_x_axes.epoch} (no epoch points)`;
    }
  }
  const g = groupKeys(chosenKeys());
  const constant = g.lr.map((k) => [k, constantValue(state.series[k])]).filter(([, v]) => v !== null);
  controls.note.textContent =
    constant.length && constant.length === g.lr.length
      ? constant.map(([k, v]) => `${k} ${fmt.number(v)} (constant)`).join(" · ")
      : "";
  controls.keysSummary.textContent = `Keys: ${state.chosen.size} of ${[...state.keys].filter(isCurveKey).length} plotted`;
  if (controls.keyList.dataset.count !== String(state.keys.size)) renderKeyList();
}

const KEY_LIST_LIMIT = 300;
/** The key checkboxes: chosen keys first, then the rest, filtered; at most KEY_LIST_LIMIT drawn. */
function renderKeyList() {
  const filter = controls.keyFilter.value.trim().toLowerCase();
  const all = [...state.keys].filter(isCurveKey).sort();
  const matching = all.filter((k) => !filter || k.toLowerCase().includes(filter));
  const ordered = [...matching.filter((k) => state.chosen.has(k)), ...matching.filter((k) => !state.chosen.has(k))];
  const shown = ordered.slice(0, KEY_LIST_LIMIT);
  controls.keyList.dataset.count = String(state.keys.size);
  replace(
    controls.keyList,
    shown.map((key) =>
      h(
        "label",
        { class: "check key", dataset: { key } },
        h("input", {
          type: "checkbox",
          checked: state.chosen.has(key),
          on: { change: (e) => toggleKey(key, e.target.checked) },
        }),
        ` ${key}`,
      ),
    ),
    ordered.length > shown.length
      ? h("p", { class: "muted" }, `${ordered.length - shown.length} more: type to filter`)
      : null,
  );
}

async function toggleKey(key, on) {
  state.userChose = true;
  if (on) state.chosen.add(key);
  else state.chosen.delete(key);
  if (on && !state.series[key]) await loadKeys([key]);
  drawCurves();
}

/** Full-resolution points of these keys from the start (a newly chosen key). */
async function loadKeys(keys) {
  if (!keys.length) return;
  try {
    mergeSeries((await readKeys(keys, -1)).series);
  } catch (err) {
    toast(err.message, "error");
  }
}

// one read names at most this many keys (the server's max_keys_per_read, from the keys listing)
let keysPerRead = 50;

/** Points of these keys after a step, in reads of at most keysPerRead keys each. */
async function readKeys(keys, afterStep, maxPoints = 1000) {
  const chunks = [];
  for (let i = 0; i < keys.length; i += keysPerRead) chunks.push(keys.slice(i, i + keysPerRead));
  const parts = await Promise.all(
    chunks.map((c) => api.getMetrics(runId, { afterStep, keys: c.join(","), maxPoints })),
  );
  const out = { series: {}, last_step: null };
  for (const p of parts) {
    Object.assign(out.series, p.series || {});
    if (p.last_step != null && (out.last_step == null || p.last_step > out.last_step)) out.last_step = p.last_step;
  }
  return out;
}

/** Every key of the run, from the key listing (index seeks, no series read), and its defaults. */
async function listKeys() {
  const keys = [];
  let after;
  let defaults = [];
  do {
    const page = await api.getMetricKeys(runId, { after });
    keys.push(...page.keys);
    defaults = page.default_keys || defaults;
    keysPerRead = page.max_keys_per_read || keysPerRead;
    after = page.next_after || undefined;
  } while (after);
  return { keys, defaults };
}

/** New keys since the last look (the key listing reads no series, however many keys). */
async function probeKeys() {
  const { keys } = await listKeys();
  let added = false;
  for (const key of keys) {
    if (!state.keys.has(key)) {
      state.keys.add(key);
      added = true;
    }
  }
  if (added && !state.userChose) {
    const wanted = new Set([...defaultKeys([...state.keys]), "epoch", "phase"].filter((k) => state.keys.has(k)));
    const fresh = [...wanted].filter((k) => !state.chosen.has(k) && !state.series[k]);
    state.chosen = new Set([...wanted].filter((k) => !NOT_CURVES.has(k)));
    await loadKeys(fresh);
  }
  return added;
}

/** The keys a poll reads at full resolution: the plotted ones and the step markers. */
function pollKeys() {
  return [...state.chosen, ...[...NOT_CURVES].filter((k) => state.keys.has(k))].join(",");
}

// Ask again from one step back: points of the same step may land in a later commit than the
// cursor's (batch points before epoch points); mergeSeries drops what is already there.
const cursor = () => Math.max(-1, state.lastStep - 1);

function mergeSeries(incoming, into = state.series) {
  let added = 0;
  for (const [key, s] of Object.entries(incoming || {})) {
    into[key] ??= { steps: [], values: [] };
    const cur = into[key];
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

/** New system/ samples after their own cursor, drawn on their chart; the count added. */
async function loadSystem() {
  const keys = [...state.keys].filter(isSystemKey);
  if (!keys.length) return 0;
  const sys = state.system;
  const read = await readKeys(keys, Math.max(-1, sys.lastStep - 1));
  const added = mergeSeries(read.series, sys.series);
  if (read.last_step != null && read.last_step > sys.lastStep) sys.lastStep = read.last_step;
  if (added) drawSystem();
  return added;
}

function drawSystem() {
  const card = charts.system.parentElement;
  const has = Object.values(state.system.series).some((s) => s.steps.length);
  if (card) card.hidden = !has;
  if (has) renderSystem(charts.system, state.system.series);
}

// ---- loading ---------------------------------------------------------------------------
/** The optimize runs made from this one, its retries, and (for an optimize run) its parent's
 * reference model. */
async function loadContext(run) {
  const none = Promise.resolve({ data: [] });
  try {
    const [children, retries, parentVariants, siblings] = await Promise.all([
      run.kind === "train" && !run.external ? api.listRuns({ parent: run.id, limit: 50 }) : none,
      fmt.isRetryable(run.status) && !run.external
        ? api.listRuns({ retry_of: run.id, sort: "created_at", limit: 50 })
        : none,
      run.kind === "optimize" && run.parent_run_id ? api.getVariants(run.parent_run_id) : none,
      run.group_size > 1 ? api.listRuns({ group: run.group_key, sort: "created_at", limit: 20 }) : none,
    ]);
    state.siblings = siblings.data;
    state.children = children.data;
    state.retries = retries.data;
    const byFormat = Object.fromEntries(parentVariants.data.map((v) => [v.format, v]));
    state.parentReference = VOCAB.reference_formats.map((f) => byFormat[f]).find(Boolean) || null;
  } catch {
    // context is a nicety: the run itself still shows
  }
}

async function start() {
  try {
    const [run, listing] = await Promise.all([api.getRun(runId), listKeys()]);
    state.run = run;
    for (const key of listing.keys) state.keys.add(key);
    state.chosen = new Set(defaultKeys([...state.keys]));
    const first = [...state.chosen, ...[...NOT_CURVES].filter((k) => state.keys.has(k))];
    if (first.length) {
      const metrics = await readKeys(first, -1);
      mergeSeries(metrics.series);
      state.lastStep = metrics.last_step ?? state.lastStep;
    }
    if (state.view.axis === "relative" || state.view.axis === "wall") await loadTimes();
    await loadContext(run);
    replace(
      main,
      slots.header,
      slots.overview,
      slots.failure,
      slots.chartControls,
      slots.charts,
      slots.variants,
      slots.cost,
      slots.devices,
      slots.confusion,
      slots.bottom,
    );
    renderAll();
    drawCurves();
    await loadSystem();
    await loadVariants();
    if (!fmt.isTerminal(run.status)) startPolling();
  } catch (err) {
    replace(
      main,
      errorState(err, () => {
        replace(main, loadingState());
        start();
      }),
    );
  }
}

function startPolling() {
  if (poller) poller.stop();
  poller = poll(
    async () => {
      const after = cursor();
      const [run, metrics, newKeys] = await Promise.all([
        api.getRun(runId),
        pollKeys() ? readKeys(pollKeys().split(","), after) : Promise.resolve({ series: {}, last_step: null }),
        probeKeys(),
      ]);
      await loadSystem();
      const statusChanged = run.status !== state.run.status || run.progress !== state.run.progress;
      state.run = run;
      const added = mergeSeries(metrics.series) + (newKeys ? 1 : 0);
      if (metrics.last_step != null && metrics.last_step > state.lastStep) state.lastStep = metrics.last_step;
      if (added && state.times && !fmt.isTerminal(run.status)) await loadTimes();
      if (added) drawCurves();
      if (statusChanged) renderAll();
      const done = fmt.isTerminal(run.status);
      if (done) {
        // one last pull: points written between the two requests above
        await probeKeys();
        const tail = pollKeys() ? await readKeys(pollKeys().split(","), cursor()) : { series: {} };
        mergeSeries(tail.series);
        await loadSystem();
        if (state.times) await loadTimes();
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
  await loadAgreement();
  await loadNetEffect();
  renderVariants();
  renderOverview();
  // once the run has succeeded with its variants: the card then keeps itself up to date
  if (!slots.devices.dataset.mounted && state.run.status === "succeeded" && Array.isArray(state.variants)) {
    slots.devices.dataset.mounted = "1";
    mountDevices(slots.devices, state.run, state.variants);
  }
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
    !terminal
      ? h(
          "button",
          {
            type: "button",
            class: "btn btn-danger",
            on: { click: () => act("Cancelled", () => api.cancelRun(run.id)) },
          },
          "Cancel run",
        )
      : null,
    fmt.isRetryable(run.status) && !run.external
      ? h(
          "button",
          { type: "button", class: "btn", on: { click: () => act("Retry queued", () => api.retryRun(run.id), true) } },
          "Retry",
        )
      : null,
    h(
      "a",
      { class: "btn", href: `/compare?runs=${run.id}${run.parent_run_id ? `,${run.parent_run_id}` : ""}` },
      "Compare",
    ),
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
      run.external ? "external run: logged by a script through the API or the Keras callback" : run.summary || "",
      run.experiment ? ` · experiment ${run.experiment}` : "",
    ),
    contextLine(run),
  );
}

/** Where this run comes from and what came of it, linked both ways. */
function contextLine(run) {
  const link = (id, text) => h("a", { href: `/runs/${id}`, dataset: { related: id } }, text || `run #${id}`);
  const parts = [];
  const spec = run.spec || {};
  if (run.study_id != null)
    parts.push([
      `trial ${run.trial_number} of `,
      h("a", { href: `/studies/${run.study_id}`, id: "run-study" }, `study #${run.study_id}`),
    ]);
  if (run.kind === "optimize" && run.parent_run_id)
    parts.push(["post-training quantization of ", link(run.parent_run_id)]);
  const init = spec.model && spec.model.init_from_run_id;
  if (init && run.kind !== "optimize") parts.push(["starts from the model of ", link(init)]);
  for (const t of spec.techniques || []) {
    if (t.name === "distillation" && t.teacher_run_id)
      parts.push([
        "distilled from teacher ",
        link(t.teacher_run_id),
        t.teacher_epoch ? ` at epoch ${t.teacher_epoch}` : "",
        ` (${scheduleText("temperature", t.temperature, t.temperature_schedule, t.temperature_end)}, ` +
          `${scheduleText("alpha", t.alpha, t.alpha_schedule, t.alpha_end)})`,
      ]);
  }
  if (run.retry_of_run_id) parts.push(["retry of ", link(run.retry_of_run_id)]);
  // same-budget controls (runspec/controls.py): each links the other and the comparison of the two
  const both = (a, b) =>
    h("a", { href: `/compare?runs=${a},${b}`, id: "compare-control" }, "compare net of extra training");
  if (run.control_run_id)
    parts.push([
      "same-budget control ",
      link(run.control_run_id, `#${run.control_run_id}`),
      " (",
      both(run.id, run.control_run_id),
      ")",
    ]);
  if (run.control_of_run_id)
    parts.push([
      "same-budget control of ",
      link(run.control_of_run_id),
      ": its model and epochs without the technique (",
      both(run.control_of_run_id, run.id),
      ")",
    ]);
  if (state.retries?.length) {
    parts.push(["retried as ", state.retries.flatMap((c, i) => [i ? ", " : "", link(c.id, `#${c.id} (${c.status})`)])]);
  }
  // a seed group is repeats over seeds; a retry or re-run of this very seed is not one (it is
  // linked as a retry above, and the group's figures count one run per seed)
  const seeds = new Set((state.siblings || []).map((c) => c.spec?.training?.seed));
  if (run.group_size > 1 && seeds.size > 1) {
    const ids = (state.siblings || []).map((c) => c.id);
    parts.push([
      h(
        "span",
        { title: `group key ${run.group_key}` },
        `seed group ${run.group_key.slice(0, 8)} of ${run.group_size} runs`,
      ),
      ids.length ? ": " : "",
      ...(state.siblings || []).flatMap((c, i) => [
        i ? ", " : "",
        c.id === run.id ? `#${c.id}` : link(c.id, `#${c.id} (seed ${c.spec?.training?.seed})`),
      ]),
      " — ",
      h(
        "a",
        { id: "compare-group", href: `/compare?runs=${ids.length ? ids.join(",") : run.id}&groups=1` },
        "compare as a group",
      ),
    ]);
  }
  if (state.children && state.children.length) {
    parts.push(["optimized as ", state.children.flatMap((c, i) => [i ? ", " : "", link(c.id, `#${c.id} ${c.name}`)])]);
  }
  if (!parts.length) return null;
  return h(
    "p",
    { class: "muted", id: "run-context" },
    parts.flatMap((p, i) => (i ? [" · ", ...p] : p)),
  );
}

function stat(label, value, extra) {
  return h(
    "div",
    { class: "stat" },
    h("div", { class: "label" }, label),
    h("div", { class: "value" }, value),
    extra || null,
  );
}

/**
 * The model the run was made to produce (the server's headline rule: the last export of the
 * chain, int8 before float16 before dynamic before float32, Keras only when nothing else), named.
 */
function headlineStat(hl) {
  const explain = hl
    ? `${hl.format}: the deployable model of this run; every variant is listed below`
    : fmt.isTerminal(state.run.status)
      ? "this run produced no measured model"
      : "measured when training ends";
  return h(
    "div",
    { class: "stat stat-wide", id: "run-headline" },
    h("div", { class: "label" }, "Model to ship · format · size · gzip · latency · accuracy"),
    h("div", { class: "value", dataset: { format: hl ? hl.format : "" } }, fmt.headlineText(hl)),
    h("div", { class: "muted" }, explain),
  );
}

/** An external run has no measured model: its last logged values speak for it. */
function finalMetricsStat() {
  const keys = ["val_accuracy", "accuracy", "val_loss", "loss"].filter(
    (k) => state.series[k] && state.series[k].values.length,
  );
  const last = (k) => state.series[k].values[state.series[k].values.length - 1];
  return h(
    "div",
    { class: "stat stat-wide", id: "run-final" },
    h("div", { class: "label" }, "Final logged values"),
    h("div", { class: "value" }, keys.length ? keys.map((k) => `${k} ${fmt.number(last(k))}`).join(" · ") : "–"),
    h(
      "div",
      { class: "muted" },
      // the same count as the key chooser's: epoch and phase markers are not curves
      `${[...state.keys].filter(isCurveKey).length} metrics logged; no model was uploaded to measure`,
    ),
  );
}

/** An optimize run against the model it converted: its parent's float32 TFLite (or Keras) model. */
function parentDeltaStat(run, hl) {
  const ref = state.parentReference;
  if (run.kind !== "optimize" || !hl || !ref) return null;
  const dAcc = hl.accuracy != null && ref.accuracy != null ? hl.accuracy - ref.accuracy : null;
  const ratio = hl.size_bytes && ref.size_bytes ? hl.size_bytes / ref.size_bytes : null;
  return stat(
    "Δ vs parent",
    `${fmt.signed(dAcc)} acc · ${fmt.ratio(ratio)} size`,
    h("div", { class: "muted" }, `against #${run.parent_run_id}'s ${fmt.modelFormat(ref.format)} model`),
  );
}

// A worker heartbeats every second while it runs a job; this much silence means trouble.
const STALE_HEARTBEAT_S = 30;

/** A running worker run whose worker has gone quiet: say so instead of a frozen progress bar. */
function staleNote(run) {
  if (run.external || run.status !== "running" || !(run.heartbeat_age_s > STALE_HEARTBEAT_S)) return null;
  return h(
    "div",
    { class: "field-error", id: "run-stale", role: "status" },
    `No heartbeat from ${run.worker || "the worker"} for ${fmt.duration(run.heartbeat_age_s)}: it may have died. ` +
      "The server requeues the run (or fails it on its last attempt) once the heartbeat timeout " +
      "(OPTIBOARD_HEARTBEAT_TIMEOUT_S) passes.",
  );
}

function renderOverview() {
  const run = state.run;
  const hl = run.headline;
  const progress =
    run.status === "running" || run.status === "queued"
      ? h(
          "div",
          { class: "stat", id: "run-progress" },
          h(
            "div",
            { class: "label" },
            run.status === "queued"
              ? "Queued — waiting for a worker"
              : `Progress · ETA ${fmt.duration(run.eta_seconds)}`,
          ),
          h("div", { class: "value" }, fmt.percent(run.progress)),
          progressBar(run.progress, "Run progress"),
          staleNote(run),
        )
      : stat("Duration", fmt.duration(run.duration_seconds));
  replace(
    slots.overview,
    h(
      "div",
      { class: "stats", id: "run-stats" },
      progress,
      run.external && (!hl || hl.format === VOCAB.logged_format) ? finalMetricsStat() : headlineStat(hl),
      parentDeltaStat(run, hl),
      run.train_seconds != null && run.kind !== "optimize"
        ? stat("Training time", fmt.duration(run.train_seconds))
        : null,
      run.peak_memory_bytes != null
        ? stat(
            "Peak memory",
            fmt.bytes(run.peak_memory_bytes),
            h("div", { class: "muted" }, "the job process's peak RSS"),
          )
        : null,
      run.external
        ? stat("Logged by", "a script", h("div", { class: "muted" }, `last heard ${fmt.relative(run.heartbeat_at)}`))
        : stat(
            "Worker",
            run.worker || "–",
            h("div", { class: "muted" }, `attempt ${run.attempt ?? 1} of ${run.max_attempts ?? 1}`),
          ),
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
    h(
      "section",
      { class: "card", style: undefined },
      h("h2", { class: "card-title" }, "Error"),
      h("pre", { class: "log", id: "run-error" }, run.error),
    ),
  );
}

const VARIANT_COLUMNS = [
  { label: "Format", cell: (v) => h("span", { class: "mono" }, v.format) },
  { label: "Accuracy", num: true, cell: (v) => fmt.accuracy(v.accuracy) },
  { label: "Precision", num: true, cell: (v) => fmt.accuracy(v.precision) },
  { label: "Recall", num: true, cell: (v) => fmt.accuracy(v.recall) },
  { label: "F1", num: true, cell: (v) => fmt.accuracy(v.f1) },
  {
    label: "Size",
    num: true,
    title: "the file's bytes; gzip -9 below",
    cell: (v) =>
      h("div", {}, fmt.bytes(v.size_bytes), h("div", { class: "hint nowrap" }, `gzip ${fmt.bytes(v.gzip_bytes)}`)),
  },
  {
    label: "Params",
    num: true,
    title: "weights; the share exactly 0 below",
    cell: (v) =>
      h("div", {}, fmt.integer(v.params), h("div", { class: "hint nowrap" }, `sparsity ${fmt.percent(v.sparsity, 1)}`)),
  },
  {
    label: "Latency p90",
    num: true,
    title: "batch 1, 1 interpreter thread (TFLite); p90 as MLPerf single-stream, p50 · p99 · ± std below",
    cell: latencyCell,
  },
  {
    label: "Memory",
    num: true,
    title: "peak memory of a fresh process loading and running the model; int8: microcontroller RAM and flash",
    cell: memoryCell,
  },
  { label: "Throughput", num: true, cell: (v) => (v.throughput_per_s ? `${fmt.integer(v.throughput_per_s)}/s` : "–") },
  { label: "Artifact", cell: (v) => h("a", { href: api.variantDownloadUrl(v), download: "" }, "Download") },
];

/** "temperature 4", or "temperature 4 → 1 (cosine)" under a schedule. */
function scheduleText(name, start, schedule, end) {
  return schedule && schedule !== "constant" && end != null
    ? `${name} ${start} → ${end} (${schedule})`
    : `${name} ${start}`;
}

const AGREEMENT_KEYS = { top1: "distillation/top1_agreement", kl: "distillation/mean_kl" };

function distillationOf(run) {
  return (run.spec?.techniques || []).find((t) => t.name === "distillation") || null;
}

/** A distilled run's agreement figures, recorded once after training (read once found). */
async function loadAgreement() {
  if (state.agreement || !distillationOf(state.run)) return;
  try {
    const res = await readKeys([AGREEMENT_KEYS.top1, AGREEMENT_KEYS.kl], undefined, 10);
    const last = (k) => {
      const s = res.series[k];
      return s?.values.length ? s.values[s.values.length - 1] : null;
    };
    const found = { top1: last(AGREEMENT_KEYS.top1), kl: last(AGREEMENT_KEYS.kl) };
    if (found.top1 != null || found.kl != null) state.agreement = found;
  } catch {
    // the figures stay "not recorded"; the curves above list the keys if they exist
  }
}

/** How closely the distilled student follows its teacher, on the test split at T = 1. */
function agreementStat() {
  const d = distillationOf(state.run);
  if (!d) return null;
  const a = state.agreement;
  const value = a
    ? `top-1 agreement ${fmt.percent(a.top1, 1)} · mean KL(teacher ‖ student) ${fmt.number(a.kl, 3)} nats`
    : fmt.isTerminal(state.run.status)
      ? "not recorded"
      : "measured on the test split when training ends";
  return h(
    "div",
    { class: "stats", id: "run-agreement" },
    stat(
      "Teacher–student agreement · test split, softmax at T = 1",
      value,
      h(
        "div",
        { class: "muted" },
        "against teacher ",
        h("a", { href: `/runs/${d.teacher_run_id}` }, `run #${d.teacher_run_id}`),
        d.teacher_epoch ? ` at epoch ${d.teacher_epoch}` : "",
        ": the share of test images where both pick the same class, and the mean KL divergence of the " +
          "student's softmax from the teacher's (0 when they agree exactly)",
      ),
    ),
  );
}

/** The run's effect net of extra training: its seed group (or itself) against each member's
 * same-budget control, aggregated by the server (GET /api/compare?groups=true: vs_control_* are
 * means of per-seed paired differences with their Student-t interval). Read once every member
 * and its control are measured. */
async function loadNetEffect() {
  const run = state.run;
  if (state.netEffect || !run.control_run_id || run.status !== "succeeded") return;
  const ids = run.group_size > 1 && state.siblings?.length ? state.siblings.map((r) => r.id) : [run.id];
  try {
    const res = await api.getCompare({ runs: ids, groups: true });
    const key = run.group_key || `run-${run.id}`;
    const rows = (res.groups?.rows || []).filter((r) => r.group_key === key && r.vs_control_accuracy_n);
    if (rows.length) state.netEffect = rows;
  } catch {
    // the links in the context line still lead to the comparison
  }
}

/** "Gain over the same student from scratch" (distillation) or "effect net of extra training":
 * per model format, the accuracy difference against the controls in points with its 95 %
 * interval and whether it excludes 0, and the gzip ratio. */
function netEffectStat() {
  const run = state.run;
  if (!run.control_run_id) return null;
  const distilled = Boolean(distillationOf(run));
  const label = distilled
    ? "Gain over the same student trained from scratch · its same-budget control"
    : "Effect net of extra training · against its same-budget control";
  const rows = state.netEffect;
  if (!rows) {
    return h(
      "div",
      { class: "stats", id: "run-net-effect" },
      stat(
        label,
        run.status === "succeeded" ? "waiting for the control's models" : "once this run and its control finish",
      ),
    );
  }
  const points = (v) => `${v > 0 ? "+" : v < 0 ? "−" : "±"}${Math.abs(100 * v).toFixed(2)} pt`;
  const line = (r) => {
    const n = r.vs_control_accuracy_n;
    const low = r.vs_control_accuracy_ci_low;
    const high = r.vs_control_accuracy_ci_high;
    const ci =
      low != null && high != null
        ? ` [${points(low)}, ${points(high)}], ${low > 0 || high < 0 ? "significant" : "not significant"} ` +
          `(mean over this run's seed group: ${n} seeds, each against its own control; paired t)`
        : ` (n=${n}: no interval; repeat the run over seeds for one)`;
    const gz = r.vs_control_gzip_ratio != null ? ` · gzip ${fmt.ratio(r.vs_control_gzip_ratio)}` : "";
    return h(
      "div",
      { class: "net-effect-row" },
      h("span", { class: "mono" }, fmt.modelFormat(r.format)),
      ` accuracy ${points(r.vs_control_accuracy)}${ci}${gz}`,
    );
  };
  return h("div", { class: "stats", id: "run-net-effect" }, stat(label, h("div", {}, ...rows.map(line))));
}

function renderVariants() {
  const v = state.variants;
  let content;
  if (v === null) content = loadingState("Loading variants…");
  else if (v instanceof Error) content = errorState(v, loadVariants);
  else if (!v.length && state.run.external)
    content = emptyState(
      "No model to measure",
      "An external run is trained by its own script; its logged metrics are above.",
    );
  else if (!v.length)
    content = emptyState(
      fmt.isTerminal(state.run.status) ? "No models were produced" : "No models yet",
      fmt.isTerminal(state.run.status)
        ? "This run ended without a measured variant."
        : "Variants appear here when training ends and each export is measured.",
    );
  else content = table(VARIANT_COLUMNS, v, { caption: "Measured variants" });
  replace(slots.variants, card("Variants", agreementStat(), netEffectStat(), content));
  renderCost();
  renderConfusion();
  renderBottom();
}

function renderCost() {
  const v = Array.isArray(state.variants) ? state.variants.filter((x) => x.extra?.protocol || x.extra?.op_profile) : [];
  if (!v.length) {
    replace(slots.cost);
    return;
  }
  if (!v.some((x) => x.id === state.costFor)) state.costFor = (v.find((x) => x.format !== "keras") || v[0]).id;
  const select = h(
    "select",
    {
      id: "cost-variant",
      on: {
        change: (e) => {
          state.costFor = Number(e.target.value);
          renderCost();
        },
      },
    },
    v.map((x) => h("option", { value: x.id, selected: x.id === state.costFor }, x.format)),
  );
  replace(
    slots.cost,
    h(
      "section",
      { class: "card", id: "cost-card" },
      h(
        "div",
        { class: "page-header" },
        h("h2", { class: "card-title" }, "Measurement and cost per op"),
        h("label", {}, "Variant ", select),
      ),
      costDetails(v.find((x) => x.id === state.costFor)),
    ),
  );
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
    {
      id: "confusion-variant",
      on: {
        change: (e) => {
          state.confusionFor = Number(e.target.value);
          drawConfusion();
        },
      },
    },
    v.map((x) => h("option", { value: x.id, selected: x.id === state.confusionFor }, x.format)),
  );
  replace(
    slots.confusion,
    h(
      "section",
      { class: "card" },
      h(
        "div",
        { class: "page-header" },
        h("h2", { class: "card-title" }, "Confusion matrix"),
        h("label", {}, "Variant ", select),
      ),
      charts.confusion,
    ),
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
  // an external run has no model here to convert: the offer would fail
  if (run.status === "succeeded" && run.kind === "train" && !run.external) left.push(optimizeCard(run));
  left.push(notesCard(run));
  const logLines = run.log_tail || [];
  const right = [
    card(
      "Log tail",
      logLines.length
        ? h("pre", { class: "log", id: "run-log" }, logLines.join("\n"))
        : h("p", { class: "muted" }, "No log lines."),
    ),
    h(
      "section",
      { class: "card" },
      h(
        "details",
        {},
        h("summary", {}, "Spec (validated JSON)"),
        h("pre", { class: "spec", id: "run-spec" }, JSON.stringify(run.spec, null, 2)),
      ),
    ),
  ];
  // keep the user's half-typed notes: rebuild only when the editor is not focused
  if (slots.bottom.contains(document.activeElement)) return;
  replace(slots.bottom, h("div", { class: "stack" }, left), h("div", { class: "stack" }, right));
}

function optimizeCard(run) {
  const boxes = state.exports.map((e) =>
    h("label", {}, h("input", { type: "checkbox", name: "export", value: e, checked: e === "int8" }), e),
  );
  const name = h("input", { type: "text", id: "optimize-name", placeholder: `${run.name}-ptq`, maxlength: "200" });
  const error = h("p", { class: "field-error", role: "alert" });
  async function submit(e) {
    e.preventDefault();
    const exports = boxes
      .map((b) => b.querySelector("input"))
      .filter((i) => i.checked)
      .map((i) => i.value);
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
    h(
      "h2",
      { class: "card-title" },
      "Optimize this model ",
      h("span", { class: "muted" }, "post-training quantization to TFLite"),
    ),
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
      state.run = await api.updateRun(run.id, {
        tags: tags.value
          .split(",")
          .map((t) => t.trim())
          .filter(Boolean),
        notes: notes.value,
      });
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
