// Studies page (issue 20): /studies lists studies and launches one; /studies/{id} shows the
// Pareto front (feasible and infeasible told apart, the baseline marked), the hypervolume
// against trials and worker-minutes, the best feasible trial per objective, the budget and the
// trials, with pause / resume / extend / stop.

import * as api from "../api.js";
import { logTicks, PALETTE, PLOT_CONFIG } from "../charts.js";
import { h, replace } from "../dom.js";
import * as fmt from "../format.js";
import {
  card,
  emptyState,
  errorState,
  loadingState,
  mountLayout,
  pageHeader,
  statusBadge,
  table,
  toast,
} from "../layout.js";
import { VOCAB } from "../vocabulary.js";

/** Full labels on the log cost axis (1-2-5 per decade, charts.js logTicks), as bytes for sizes:
 * Plotly's own minor labels read "2 3 … 9 100k", where "2" means 20k. */
function costTicks(cost, values) {
  const ticks = logTicks(values);
  if (ticks.tickvals && cost.endsWith("_bytes")) ticks.ticktext = ticks.tickvals.map((v) => fmt.bytes(v));
  return ticks;
}

const match = window.location.pathname.match(/^\/studies\/(\d+)/);
const studyId = match ? Number(match[1]) : null;
const main = mountLayout("studies", studyId ? `Study #${studyId}` : "Studies");
const ACTIVE = VOCAB.active_study_statuses; // runspec/vocabulary.py, via GET /api/vocabulary

function value(objective, v) {
  if (v === null || v === undefined) return "–";
  if (objective.endsWith("_bytes")) return fmt.bytes(v);
  if (objective.endsWith("_ms")) return `${Number(v).toFixed(2)} ms`;
  if (objective === "accuracy" || objective === "f1") return `${(v * 100).toFixed(2)} %`;
  return Number(v).toLocaleString("en");
}

/** "pruning (target_sparsity 0.9, epochs 2) → clustering (…) → int8": each technique of the
 * chain in order with its own settings (two techniques both have "epochs"). */
function recipeText(recipe) {
  if (!recipe) return "";
  const techniques = recipe.chain === "none" ? [] : String(recipe.chain).split("+");
  const steps = techniques.map((name) => {
    const settings = Object.entries(recipe)
      .filter(([k]) => k.startsWith(`${name}.`))
      .map(([k, v]) => `${k.slice(name.length + 1)} ${typeof v === "number" ? Number(v.toPrecision(3)) : v}`);
    return settings.length ? `${name} (${settings.join(", ")})` : name;
  });
  return [...steps, recipe.export].join(" → ");
}

// --- one study ---------------------------------------------------------------------------

function frontChart(el, s) {
  const cost = s.objectives.find((o) => !s.quality_objectives.includes(o));
  const metric = s.constraint.metric;
  const done = s.trials.filter((t) => t.state === "complete" && t.values);
  const y = (t) => t.constraint_metric;
  const group = (rows, name, color, symbol) => ({
    type: "scatter",
    mode: "markers",
    name,
    x: rows.map((t) => t.values[cost]),
    y: rows.map(y),
    text: rows.map((t) => `trial ${t.number}: ${recipeText(t.recipe)}`),
    hovertemplate: `%{text}<br>${cost} %{x:,}<br>${metric} %{y:.4f}<extra></extra>`,
    marker: { color, symbol, size: 10, line: { width: 1, color: "#fff" } },
  });
  const front = new Set(s.front);
  // the front is of feasible trials only, whatever the include-infeasible switch adds to the lists
  const frontRows = done
    .filter((t) => t.feasible && front.has(t.number))
    .sort((a, b) => a.values[cost] - b.values[cost]);
  const data = [
    group(
      done.filter((t) => t.feasible && !front.has(t.number)),
      "feasible",
      PALETTE[0],
      "circle",
    ),
    group(
      done.filter((t) => !t.feasible),
      "infeasible (below the bar)",
      "#9ca3af",
      "x",
    ),
    { ...group(frontRows, "Pareto front", PALETTE[1], "diamond"), mode: "lines+markers", line: { shape: "hv" } },
    {
      type: "scatter",
      mode: "markers",
      name: "baseline",
      x: [s.reference[cost]],
      y: [s.reference[metric]],
      marker: { color: "#111827", symbol: "star", size: 16 },
      hovertemplate: `baseline run ${s.baseline_run_id}<br>${cost} %{x:,}<br>${metric} %{y:.4f}<extra></extra>`,
    },
  ];
  const layout = {
    xaxis: {
      title: { text: `${cost} (log)` },
      type: "log",
      gridcolor: "#e5e7eb",
      automargin: true,
      ...costTicks(cost, [...done.map((t) => t.values[cost]), s.reference[cost]]),
    },
    yaxis: { title: { text: metric }, gridcolor: "#e5e7eb", automargin: true },
    shapes: [
      {
        type: "line",
        xref: "paper",
        x0: 0,
        x1: 1,
        y0: s.bar,
        y1: s.bar,
        line: { color: "#dc2626", dash: "dash", width: 1 },
      },
    ],
    annotations: [
      {
        xref: "paper",
        x: 0,
        y: s.bar,
        xanchor: "left",
        yanchor: "bottom",
        text: `bar ${s.bar.toFixed(4)}`,
        showarrow: false,
        font: { color: "#dc2626", size: 11 },
      },
    ],
    margin: { l: 60, r: 16, t: 40, b: 50 },
    legend: { orientation: "h", y: -0.25 },
  };
  window.Plotly.react(el, data, layout, PLOT_CONFIG);
}

function hypervolumeChart(el, s, axis) {
  const hv = s.hypervolume;
  const layout = {
    xaxis: {
      title: { text: axis === "trials" ? "trials told" : "worker-minutes" },
      gridcolor: "#e5e7eb",
      automargin: true,
    },
    yaxis: {
      // x of each point: log10(baseline cost / cost); y: metric − bar (backend study_rules)
      title: { text: `hypervolume (decades × ${s.spec.constraint.metric} above bar)` },
      gridcolor: "#e5e7eb",
      automargin: true,
      rangemode: "tozero",
    },
    margin: { l: 60, r: 16, t: 16, b: 50 },
  };
  if (!hv.length) {
    layout.annotations = [
      { text: "No trial told yet", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5 },
    ];
    layout.xaxis.visible = false;
    layout.yaxis.visible = false;
  }
  const data = [
    {
      type: "scatter",
      mode: "lines+markers",
      x: hv.map((p) => (axis === "trials" ? p.trials : p.worker_minutes)),
      y: hv.map((p) => p.hypervolume),
      line: { shape: "hv", color: PALETTE[2] },
      hovertemplate: "%{x:.3g}: %{y:.4g}<extra></extra>",
    },
  ];
  window.Plotly.react(el, data, layout, PLOT_CONFIG);
}

function budgetCard(s) {
  const b = s.budget;
  const row = (label, key, limit, unit) =>
    h(
      "tr",
      {},
      h("th", { scope: "row" }, label),
      h("td", { class: "num" }, `${Number(b.used[key]).toFixed(key === "trials" ? 0 : 1)} ${unit}`),
      h(
        "td",
        { class: "num" },
        limit === null ? "no limit" : `${Number(b.left[key]).toFixed(key === "trials" ? 0 : 1)} ${unit}`,
      ),
    );
  return card(
    "Budget",
    h(
      "table",
      { class: "data" },
      h(
        "thead",
        {},
        h("tr", {}, h("th", {}, ""), h("th", { class: "num" }, "used"), h("th", { class: "num" }, "left")),
      ),
      h(
        "tbody",
        {},
        row("trials", "trials", b.limits.max_trials, ""),
        row("worker time", "worker_minutes", b.limits.worker_minutes, "min"),
        row("wall time", "wall_seconds", b.limits.wall_seconds, "s"),
      ),
    ),
  );
}

function bestCard(s) {
  if (!s.best.length) {
    const miss = s.closest_miss;
    return card(
      "Best feasible",
      miss
        ? h(
            "p",
            {},
            "Nothing met the bar yet. Closest miss: ",
            h("a", { href: `/runs/${miss.run_id}` }, `trial ${miss.number}`),
            ` with ${s.constraint.metric} ${miss.constraint_metric.toFixed(4)} (bar ${s.bar.toFixed(4)}).`,
          )
        : h(
            "p",
            { class: "muted" },
            s.trial_counts && s.trial_counts.pruned + s.trial_counts.failed > 0
              ? `No trial has a measured model yet: ${s.trial_counts.pruned} pruned, ${s.trial_counts.failed} failed (see the trials below).`
              : "No trial has finished yet.",
          ),
    );
  }
  return card(
    s.include_infeasible ? "Best (all trials)" : "Best feasible",
    table(
      [
        { label: "objective", cell: (b) => `${b.direction === "minimize" ? "smallest" : "largest"} ${b.objective}` },
        { label: "value", num: true, cell: (b) => value(b.objective, b.value) },
        { label: "trial", cell: (b) => h("a", { href: `/runs/${b.run_id}` }, `#${b.number} (run ${b.run_id})`) },
        { label: "", cell: (b) => (b.download ? h("a", { href: b.download, download: "" }, "download") : "") },
      ],
      s.best,
    ),
  );
}

function trialsTable(s) {
  const state = (t) => (t.state === "complete" ? (t.feasible ? "feasible" : "infeasible") : t.state);
  const csv = `/api/studies/${s.id}/trials.csv${s.include_infeasible ? "?include_infeasible=true" : ""}`;
  return card(
    `Trials (${s.trials.length})`,
    h(
      "p",
      { class: "muted" },
      h("a", { href: csv, download: "", id: "trials-csv" }, "Download as CSV"),
      s.include_infeasible ? " (every trial)" : " (feasible trials only)",
    ),
    s.trials.length
      ? table(
          [
            { label: "#", num: true, cell: (t) => String(t.number) },
            {
              label: "state",
              cell: (t) => h("span", { class: `badge trial-${state(t)}`, title: t.pruned_reason || "" }, state(t)),
            },
            { label: "recipe", cell: (t) => recipeText(t.recipe) },
            ...s.objectives.map((o) => ({
              label: o,
              num: true,
              cell: (t) => (t.values ? value(o, t.values[o]) : "–"),
            })),
            { label: "worker time", num: true, cell: (t) => fmt.duration(t.worker_seconds) },
            {
              label: "run",
              cell: (t) =>
                t.run_id ? h("a", { href: `/runs/${t.run_id}` }, `run ${t.run_id}`) : t.pruned_reason || "–",
            },
          ],
          [...s.trials].reverse(),
        )
      : s.status === "failed"
        ? emptyState("No trials", "The study failed before its first trial (see why above).")
        : emptyState(
            "No trials yet",
            s.note ? "Trials start once the baseline run has succeeded." : "Trials start as soon as a worker is free.",
          ),
  );
}

async function steer(action, body) {
  try {
    await api.steerStudy(studyId, action, body);
    toast(`Study ${action === "extend" ? "extended" : `${action}d`}.`);
  } catch (e) {
    toast(e.message, "error");
  }
  load();
}

function actions(s) {
  const btn = (label, action, enabled, body) =>
    h("button", { type: "button", class: "btn", disabled: !enabled, on: { click: () => steer(action, body) } }, label);
  return [
    btn("Pause", "pause", ACTIVE.includes(s.status) && s.status !== "paused"),
    btn("Resume", "resume", s.status === "paused"),
    btn("Extend +10 trials", "extend", !["stopped", "failed"].includes(s.status), { trials: 10 }),
    h(
      "button",
      {
        type: "button",
        class: "btn btn-danger",
        disabled: !ACTIVE.includes(s.status),
        on: { click: () => window.confirm("Stop this study and cancel its running trials?") && steer("stop") },
      },
      "Stop",
    ),
  ];
}

let includeInfeasible = false;
let timer = null;
const frontEl = h("div", { class: "chart tall", id: "study-front" });
const hvTrialsEl = h("div", { class: "chart", id: "study-hv-trials" });
const hvMinutesEl = h("div", { class: "chart", id: "study-hv-minutes" });

async function load() {
  clearTimeout(timer);
  let s;
  try {
    s = await api.getStudy(studyId, includeInfeasible);
  } catch (e) {
    replace(main, errorState(e, load));
    return;
  }
  const c = s.constraint;
  const toggle = h(
    "label",
    { class: "inline" },
    h("input", {
      type: "checkbox",
      id: "include-infeasible",
      checked: includeInfeasible,
      on: {
        change: (ev) => {
          includeInfeasible = ev.target.checked;
          load();
        },
      },
    }),
    " include infeasible trials in best, front and export",
  );
  replace(
    main,
    pageHeader(s.name, {
      subtitle:
        `${s.strategy} search from ${s.baseline_model_id ? `uploaded model #${s.baseline_model_id}` : `baseline run ${s.baseline_run_id}`}` +
        ` · objectives ${s.objectives.join(", ")} · ` +
        `${c.metric} ≥ ${s.bar == null ? "baseline" : `${(s.bar * 100).toFixed(2)} %`} (baseline − ${c.max_drop} ${c.unit})`,
      actions: actions(s),
    }),
    h(
      "p",
      { id: "study-status" },
      statusBadge(s.status),
      s.stop_reason ? ` ${s.stop_reason}` : "",
      s.note ? ` ${s.note}` : "",
      " · ",
      h(
        "a",
        { href: `/runs/${s.baseline_run_id}`, id: "study-baseline-link" },
        s.baseline_model_id
          ? `baseline run #${s.baseline_run_id} (uploaded model #${s.baseline_model_id} as uploaded)`
          : `baseline run #${s.baseline_run_id}`,
      ),
      " · ",
      toggle,
    ),
    Object.keys(s.left_out_chains || {}).length
      ? h(
          "div",
          { class: "muted", id: "study-left-out" },
          "Left out of the default chains (this baseline cannot take them):",
          h(
            "ul",
            {},
            Object.entries(s.left_out_chains).map(([chain, why]) => h("li", {}, h("strong", {}, chain), ` — ${why}`)),
          ),
        )
      : "",
    h(
      "div",
      { class: "grid-2" },
      card("Pareto front: accuracy against cost", frontEl),
      h("div", {}, bestCard(s), budgetCard(s)),
    ),
    h(
      "div",
      { class: "grid-2" },
      card("Hypervolume against trials", hvTrialsEl),
      card("Hypervolume against worker-minutes", hvMinutesEl),
    ),
    trialsTable(s),
  );
  if (s.bar == null) {
    // a study from an uploaded model: no reference until its baseline run has succeeded
    replace(
      frontEl,
      h(
        "p",
        { class: "muted", id: "study-no-reference" },
        s.note
          ? `The front appears once the baseline is measured: ${s.note}.`
          : "No baseline figures: the baseline run did not succeed.",
      ),
    );
  } else if (window.Plotly) {
    frontChart(frontEl, s);
  }
  if (window.Plotly) {
    hypervolumeChart(hvTrialsEl, s, "trials");
    hypervolumeChart(hvMinutesEl, s, "minutes");
  }
  if (ACTIVE.includes(s.status)) timer = setTimeout(load, 3000);
}

// --- the list and the launch form ----------------------------------------------------------

const EXAMPLE = {
  name: "smallest within 1 point",
  baseline_run_id: 1,
  objectives: ["gzip_bytes", "accuracy"],
  constraint: { metric: "accuracy", max_drop: 1, unit: "points" },
  budget: { max_trials: 30 },
  strategy: "tpe",
};

// Datasets an uploaded model can be measured on without an upload of its own.
const BUILTIN_DATASETS = ["digits", "mnist", "fashion_mnist", "cifar10"];

/** The example spec with the chosen baseline: a finished run (`run`) or an uploaded model
 * (`model`, measured on `dataset` first). Keeps every other field the user typed. */
function withBaseline(spec, kind, id, dataset) {
  const out = { ...spec };
  delete out.baseline_run_id;
  delete out.baseline_model_id;
  delete out.dataset;
  const keyed = kind === "model" ? { baseline_model_id: id, dataset: { name: dataset } } : { baseline_run_id: id };
  const { name, ...rest } = out;
  return { name, ...keyed, ...rest };
}

function baselinePicker(area, models, chosenModel) {
  const kind = h(
    "select",
    { id: "study-baseline-kind", "aria-label": "baseline kind" },
    h("option", { value: "run" }, "a finished run"),
    h("option", { value: "model", disabled: !models.length }, "an uploaded model"),
  );
  const runId = h("input", {
    id: "study-baseline-run",
    type: "number",
    min: 1,
    value: 1,
    "aria-label": "baseline run id",
  });
  const model = h(
    "select",
    { id: "study-baseline-model", "aria-label": "uploaded model" },
    models.map((m) => h("option", { value: String(m.id) }, `#${m.id} ${m.name}`)),
  );
  const dataset = h(
    "select",
    { id: "study-dataset", "aria-label": "dataset to measure the model on" },
    BUILTIN_DATASETS.map((d) => h("option", { value: d }, d)),
  );
  const runPart = h("span", { class: "inline" }, " run ", runId);
  const modelPart = h("span", { class: "inline" }, " ", model, " measured on ", dataset);
  const note = h("p", { class: "muted", id: "study-baseline-note" });
  const sync = () => {
    const isModel = kind.value === "model";
    runPart.hidden = isModel;
    modelPart.hidden = !isModel;
    let spec;
    try {
      spec = JSON.parse(area.value);
    } catch {
      spec = { ...EXAMPLE };
    }
    const id = Number(isModel ? model.value : runId.value);
    area.value = JSON.stringify(withBaseline(spec, kind.value, id, dataset.value), null, 2);
    replace(
      note,
      isModel
        ? "The model is measured as uploaded first (a baseline run with a float32 .tflite export); the study waits " +
            "for that run, then trials prune, cluster and quantize it. Distillation is left out: it trains a " +
            "narrower built-in architecture, and an uploaded model has none to shrink."
        : "The baseline must be a finished run; trials fine-tune its model, distillation trains a fresh student.",
    );
  };
  if (chosenModel != null && models.some((m) => m.id === chosenModel)) {
    kind.value = "model";
    model.value = String(chosenModel);
  }
  for (const el of [kind, runId, model, dataset]) el.addEventListener("change", sync);
  sync();
  return h(
    "div",
    { class: "study-baseline" },
    h("label", { class: "inline" }, "Baseline: ", kind),
    runPart,
    modelPart,
    note,
  );
}

function launchForm(models = [], chosenModel = null) {
  const area = h(
    "textarea",
    { id: "study-spec", rows: 12, class: "mono", spellcheck: "false", "aria-label": "study spec (JSON)" },
    JSON.stringify(EXAMPLE, null, 2),
  );
  const picker = baselinePicker(area, models, chosenModel);
  const errors = h("ul", { class: "field-errors", role: "alert" });
  const submit = async (ev) => {
    ev.preventDefault();
    replace(errors);
    let spec;
    try {
      spec = JSON.parse(area.value);
    } catch (e) {
      replace(errors, h("li", {}, `Not valid JSON: ${e.message}`));
      return;
    }
    try {
      const s = await api.createStudy(spec);
      window.location.assign(`/studies/${s.id}`);
    } catch (e) {
      replace(
        errors,
        ...(e.fieldErrors.length
          ? e.fieldErrors.map((f) => h("li", {}, `${f.loc.filter((p) => p !== "body").join(".")}: ${f.msg}`))
          : [h("li", {}, e.message)]),
      );
    }
  };
  return card(
    "Start a study",
    h(
      "p",
      { class: "muted" },
      "A StudySpec as JSON (every field and its default: ",
      h("a", { href: "/docs#/studies" }, "API docs"),
      "). Choose the baseline below: it fills in the spec.",
    ),
    h(
      "form",
      { on: { submit } },
      picker,
      area,
      errors,
      h("button", { type: "submit", class: "btn btn-primary" }, "Start study"),
    ),
  );
}

async function loadList() {
  replace(
    main,
    pageHeader("Studies", {
      subtitle: "Budgeted searches over whole recipes for the smallest or fastest model that meets an accuracy bar.",
    }),
    loadingState(),
  );
  let page;
  let models = [];
  try {
    [page, models] = await Promise.all([
      api.listStudies(),
      api.listModels().then(
        (r) => (r.data || []).filter((m) => m.format === "keras"),
        () => [], // the launch form still works with run baselines
      ),
    ]);
  } catch (e) {
    replace(main, errorState(e, loadList));
    return;
  }
  const chosen = new URLSearchParams(window.location.search).get("model");
  const list = page.data.length
    ? table(
        [
          { label: "#", num: true, cell: (s) => String(s.id) },
          { label: "name", cell: (s) => h("a", { href: `/studies/${s.id}` }, s.name) },
          { label: "status", cell: (s) => statusBadge(s.status) },
          { label: "strategy", cell: (s) => s.strategy },
          { label: "trials", num: true, cell: (s) => String(s.budget.used.trials) },
          { label: "feasible", num: true, cell: (s) => String(s.trial_counts.feasible) },
          { label: "objectives", cell: (s) => s.objectives.join(", ") },
        ],
        page.data,
      )
    : emptyState("No study yet", "Start one below from a finished run or an uploaded model.");
  replace(
    main,
    pageHeader("Studies", {
      subtitle: "Budgeted searches over whole recipes for the smallest or fastest model that meets an accuracy bar.",
    }),
    card(null, list),
    launchForm(models, chosen == null ? null : Number(chosen)),
  );
  if (chosen != null) document.getElementById("study-spec")?.scrollIntoView({ block: "center" });
}

if (studyId) {
  replace(main, loadingState());
  if (document.readyState === "complete") load();
  else window.addEventListener("load", load);
} else {
  loadList();
}
