// Launch page: one run or a sweep, with the form generated from GET /api/techniques.
// The sweep grid varies any scalar field of the spec; the server says how many runs it
// will create (POST /api/sweeps/preview) before anything is queued.

import * as api from "../api.js";
import { debounce, h, replace } from "../dom.js";
import * as fmt from "../format.js";
import { errorState, loadingState, mountLayout, pageHeader, toast } from "../layout.js";
import { SchemaForm } from "../schema_form.js";
import { VOCAB } from "../vocabulary.js";

const main = mountLayout("launch", "Launch");
const state = {
  mode: new URLSearchParams(window.location.search).get("mode") === "sweep" ? "sweep" : "single",
  form: null,
  paths: [],
  rows: [],
  previewAbort: null,
};

replace(
  main,
  pageHeader("Launch", { subtitle: "Train a model with an optimization recipe, or a grid of them." }),
  loadingState("Loading the available techniques…"),
);
init();

async function init() {
  try {
    const meta = await api.getTechniques();
    build(meta);
  } catch (err) {
    replace(main, pageHeader("Launch"), errorState(err, init));
  }
}

function build(meta) {
  const availability = meta.dataset_availability || {};
  const form = new SchemaForm(meta.schema, meta.defaults, {
    techniqueNames: VOCAB.technique_names,
    describeOption: (path, value) => {
      const a = path === "dataset.name" ? availability[value] : null;
      return a && !a.available ? { label: `${value} — not on this server`, disabled: true, title: a.reason } : null;
    },
  });
  state.form = form;
  state.paths = form.sweepablePaths();

  const modeButtons = ["single", "sweep"].map((m) =>
    h(
      "button",
      {
        type: "button",
        "aria-pressed": state.mode === m ? "true" : "false",
        dataset: { mode: m },
        on: { click: () => setMode(m) },
      },
      m === "single" ? "One run" : "Sweep",
    ),
  );
  const sweepBox = h("section", { class: "card", id: "sweep-editor" });
  const countValue = h("div", { class: "count", id: "sweep-count" }, "1");
  const countLabel = h("p", { class: "muted", id: "sweep-count-label" }, "run will be queued");
  const previewError = h("p", { class: "field-error", role: "alert" });
  const submit = h("button", { type: "submit", class: "btn btn-primary", id: "launch-submit" }, "Launch run");
  const formError = h("div", { class: "banner banner-error", role: "alert", hidden: true });

  const random = {
    on: h("input", {
      type: "checkbox",
      id: "random-on",
      on: {
        change: () => {
          randomFields.hidden = !random.on.checked;
          preview();
        },
      },
    }),
    budget: h("input", {
      type: "number",
      id: "random-budget",
      min: "1",
      step: "1",
      value: "8",
      on: { input: () => preview() },
    }),
    seed: h("input", {
      type: "number",
      id: "random-seed",
      min: "0",
      step: "1",
      value: "0",
      on: { input: () => preview() },
    }),
  };
  const randomFields = h(
    "div",
    { class: "fields", hidden: true },
    h("div", { class: "field" }, h("label", { for: "random-budget" }, "Runs to sample"), random.budget),
    h("div", { class: "field" }, h("label", { for: "random-seed" }, "Sampling seed"), random.seed),
  );

  function sweepBody() {
    const grid = {};
    const problems = [];
    for (const row of state.rows) {
      if (!row.path.value) continue;
      const spec = state.paths.find((p) => p.path === row.path.value);
      const raw = row.values.value
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean);
      const values = raw.map((s) => parseValue(s, spec.schema));
      row.error.textContent = "";
      row.values.removeAttribute("aria-invalid");
      const bad = raw.filter((s, i) => values[i] === undefined);
      if (bad.length || !raw.length) {
        row.error.textContent = raw.length
          ? `Not valid for ${spec.label}: ${bad.join(", ")}`
          : "Give at least one value.";
        row.values.setAttribute("aria-invalid", "true");
        problems.push(spec.path);
        continue;
      }
      grid[spec.path] = values;
    }
    const body = {
      base: form.value(),
      grid,
      random: random.on.checked ? { budget: Number(random.budget.value), seed: Number(random.seed.value) } : null,
    };
    return { body, problems };
  }

  const preview = debounce(async () => {
    if (state.mode !== "sweep") return;
    const { body, problems } = sweepBody();
    previewError.textContent = "";
    if (problems.length) {
      countValue.textContent = "–";
      countLabel.textContent = "fix the grid values first";
      return;
    }
    if (state.previewAbort) state.previewAbort.abort();
    state.previewAbort = new AbortController();
    try {
      const res = await api.previewSweep(body, { signal: state.previewAbort.signal });
      countValue.textContent = String(res.count);
      countLabel.textContent = res.count === 1 ? "run will be queued" : "runs will be queued";
      submit.textContent = `Launch ${res.count} run${res.count === 1 ? "" : "s"}`;
    } catch (err) {
      if (err.name === "AbortError") return;
      countValue.textContent = "–";
      countLabel.textContent = "the server could not expand this sweep";
      previewError.textContent = err.message;
    }
  }, 250);

  function addRow(path = "", values = "") {
    const id = `sweep-${state.rows.length}`;
    const pathSel = h(
      "select",
      {
        id: `${id}-path`,
        "aria-label": "Parameter to vary",
        on: {
          change: () => {
            hintFor(row);
            preview();
          },
        },
      },
      h("option", { value: "" }, "Choose a parameter…"),
      state.paths.map((p) => h("option", { value: p.path, selected: p.path === path }, p.label)),
    );
    const vals = h("input", {
      type: "text",
      id: `${id}-values`,
      "aria-label": "Values, comma-separated",
      placeholder: "e.g. 0.001, 0.01",
      value: values,
      on: { input: () => preview() },
    });
    const row = {
      path: pathSel,
      values: vals,
      error: h("p", { class: "field-error" }),
      hint: h("span", { class: "hint" }),
    };
    row.el = h(
      "div",
      {},
      h(
        "div",
        { class: "sweep-row" },
        pathSel,
        vals,
        h(
          "button",
          {
            type: "button",
            class: "btn btn-sm btn-danger",
            "aria-label": "Remove this parameter",
            on: {
              click: () => {
                state.rows = state.rows.filter((r) => r !== row);
                drawSweep();
                preview();
              },
            },
          },
          "Remove",
        ),
      ),
      row.hint,
      row.error,
    );
    hintFor(row);
    state.rows.push(row);
    drawSweep();
  }

  // the technique chain may have changed since the row was made: offer its parameters too
  function refreshOptions(row) {
    state.paths = form.sweepablePaths();
    const chosen = row.path.value;
    replace(
      row.path,
      h("option", { value: "" }, "Choose a parameter…"),
      state.paths.map((p) => h("option", { value: p.path, selected: p.path === chosen }, p.label)),
    );
  }

  function hintFor(row) {
    const spec = state.paths.find((p) => p.path === row.path.value);
    row.hint.textContent = !spec
      ? ""
      : spec.schema.type === "array"
        ? `sets of: ${spec.schema.items.enum.join(", ")}; join a set with +, e.g. float32+int8, float16`
        : spec.schema.enum
          ? `one of: ${spec.schema.enum.join(", ")}`
          : spec.schema.type === "boolean"
            ? "true, false"
            : rangeText(spec.schema);
  }

  function drawSweep() {
    replace(
      sweepBox,
      h(
        "h2",
        { class: "card-title" },
        "Sweep grid ",
        h("span", { class: "muted" }, "every combination of the values below, on top of the form's spec"),
      ),
      state.rows.map((r) => r.el),
      h(
        "p",
        {},
        h(
          "button",
          { type: "button", class: "btn btn-sm", id: "sweep-add", on: { click: () => addRow() } },
          "Add parameter",
        ),
      ),
      h(
        "div",
        { class: "field check" },
        random.on,
        h("label", { for: "random-on" }, "Random search: sample a subset of the grid"),
      ),
      randomFields,
    );
  }

  function setMode(m) {
    state.mode = m;
    for (const b of modeButtons) b.setAttribute("aria-pressed", b.dataset.mode === m ? "true" : "false");
    sweepBox.hidden = m !== "sweep";
    countLabel.textContent = m === "sweep" ? "runs will be queued" : "run will be queued";
    if (m === "sweep") {
      if (!state.rows.length) addRow("training.optimizer.learning_rate", "0.001, 0.01");
      preview();
    } else {
      countSingle();
    }
    const url = new URL(window.location.href);
    if (m === "sweep") url.searchParams.set("mode", "sweep");
    else url.searchParams.delete("mode");
    history.replaceState(null, "", url.pathname + url.search);
  }

  // the technique chain may change: every row offers the current technique parameters
  form.onChange = () => {
    state.paths = form.sweepablePaths();
    for (const row of state.rows) refreshOptions(row);
    if (state.mode === "single") countSingle();
    preview();
  };

  /** `repeats` runs (one seed group), each with its same-budget control when `control` is set. */
  function countSingle() {
    const value = form.value();
    const repeats = Number(value.repeats) || 1;
    const n = repeats * (value.control ? 2 : 1);
    countValue.textContent = String(n);
    const group = repeats > 1 ? " (one seed group)" : "";
    countLabel.textContent =
      n === 1
        ? "run will be queued"
        : value.control
          ? `runs will be queued: ${repeats > 1 ? `${repeats} runs${group}` : "the run"} and ${repeats > 1 ? "their controls" : "its control"}`
          : `runs will be queued${group}`;
    submit.textContent = value.control
      ? repeats > 1
        ? "Launch runs + controls"
        : "Launch run + control"
      : "Launch run";
  }

  async function onSubmit(e) {
    e.preventDefault();
    formError.hidden = true;
    form.clearErrors();
    submit.disabled = true;
    try {
      if (state.mode === "single") {
        const run = await api.createRun(form.value());
        // repeats: the seed group on the compare page (runs differing only by seed, with intervals)
        const ids = run.group_run_ids || [run.id];
        window.location.href = ids.length > 1 ? `/compare?runs=${ids.join(",")}&groups=1` : `/runs/${run.id}`;
      } else {
        const { body, problems } = sweepBody();
        if (problems.length) throw new Error("Fix the highlighted sweep values first.");
        const res = await api.createSweep(body);
        toast(`Queued ${res.count} runs`);
        const exp = typeof res.experiment === "string" ? res.experiment : res.experiment && res.experiment.name;
        window.location.href = exp ? `/?experiment=${encodeURIComponent(exp)}` : "/";
      }
    } catch (err) {
      submit.disabled = false;
      if (err.status === 422 && err.fieldErrors.length) {
        // sweep errors come as ["body","base",...] for the spec and ["body","grid",...] for the grid
        const specErrors = err.fieldErrors.filter((x) => state.mode === "single" || x.loc[1] === "base");
        const other = err.fieldErrors.filter((x) => !specErrors.includes(x));
        const unmatched = specErrors.length ? form.showErrors(specErrors, state.mode === "single" ? 1 : 2) : [];
        if (other.length)
          previewError.textContent = other.map((x) => `${x.loc.slice(1).join(".")}: ${x.msg}`).join("; ");
        if (unmatched.length && !specErrors.length) {
          formError.textContent = err.message;
          formError.hidden = false;
        }
      } else {
        formError.textContent = err.message;
        formError.hidden = false;
      }
    }
  }

  sweepBox.hidden = state.mode !== "sweep";
  replace(
    main,
    pageHeader("Launch", {
      subtitle: "Train a model with an optimization recipe, or a grid of them. Defaults come from the server's spec.",
    }),
    h(
      "form",
      { id: "launch-form", novalidate: true, on: { submit: onSubmit } },
      h(
        "div",
        { class: "form-layout" },
        h(
          "div",
          {},
          h("div", { class: "segmented mode-switch", role: "group", "aria-label": "Launch mode" }, modeButtons),
          formError,
          sweepBox,
          form.element,
        ),
        h(
          "aside",
          { class: "form-side card" },
          h("h2", { class: "card-title" }, "Summary"),
          countValue,
          countLabel,
          previewError,
          h("p", {}, submit),
          h("p", { class: "muted" }, "Runs are queued to the workers; watch them on the Runs page."),
        ),
      ),
    ),
  );
  if (state.mode === "sweep") setMode("sweep");
  uploadWidget(form);
  modelWidget(form);
  unavailableNote(form, availability);
}

/** Under the dataset choice: the built-in datasets this server cannot train on, and why (the
 * disabled options' tooltips alone are never seen). */
function unavailableNote(form, availability) {
  const slot = form.slots.get("dataset.name");
  const missing = Object.entries(availability).filter(([, a]) => !a.available);
  if (!slot || !missing.length) return;
  const folders = [...new Set(missing.map(([, a]) => a.folder).filter(Boolean))];
  slot.container.after(
    h(
      "p",
      { class: "fields-note muted", id: "dataset-unavailable" },
      "Not on this server: ",
      missing.flatMap(([name, a], i) => [
        i ? ", " : "",
        h("strong", {}, name),
        a.missing ? ` (${a.missing.join(", ")})` : ` (${a.reason})`,
      ]),
      folders.length ? ` — missing in ${folders.join(", ")}` : "",
    ),
  );
}

/** What validation found in an uploaded .npz, in one line: "1,212 train / 450 test examples,
 * input 8×8×1 (float32), 10 classes (labels 0–9)". */
function datasetSummary(info) {
  const parts = [];
  if (info.train_examples != null)
    parts.push(`${fmt.integer(info.train_examples)} train / ${fmt.integer(info.test_examples)} test examples`);
  if (info.input_shape) parts.push(`input ${info.input_shape.join("×")}${info.x_dtype ? ` (${info.x_dtype})` : ""}`);
  if (info.classes != null) {
    const labels = info.class_names || info.label_values;
    const shown = labels ? ` (${labels.slice(0, 6).join(", ")}${labels.length > 6 ? ", …" : ""})` : "";
    parts.push(`${info.classes} classes${shown}`);
  }
  return parts.join(", ") || "validated";
}

/**
 * Beside "Upload id" (shown only for the upload dataset): upload an .npz here, or pick one
 * uploaded before; either fills the id.
 */
function uploadWidget(form) {
  const slot = form.slots.get("dataset.upload_id");
  if (!slot || !slot.input) return;
  const idInput = slot.input;
  const status = h("p", { class: "muted", id: "upload-status", "aria-live": "polite" });
  const existing = h(
    "select",
    {
      id: "upload-existing",
      "aria-label": "Uploaded datasets",
      on: {
        change: (e) => {
          if (e.target.value) {
            idInput.value = e.target.value;
            idInput.dispatchEvent(new Event("input", { bubbles: true }));
          }
        },
      },
    },
    h("option", { value: "" }, "Uploaded before…"),
  );
  const file = h("input", {
    type: "file",
    id: "upload-file",
    accept: ".npz,application/octet-stream",
    "aria-label": "Upload an .npz dataset",
    on: {
      change: async (e) => {
        const chosen = e.target.files && e.target.files[0];
        if (!chosen) return;
        slot.error.textContent = ""; // a new file: the last one's refusal no longer applies
        status.textContent = `Uploading ${chosen.name}…`;
        try {
          const ds = await api.uploadDataset(chosen, chosen.name.replace(/\.npz$/i, ""));
          idInput.value = String(ds.id);
          idInput.dispatchEvent(new Event("input", { bubbles: true }));
          status.textContent = `Uploaded “${ds.name}” (${fmt.bytes(ds.size_bytes)}) as dataset #${ds.id}: ${datasetSummary(ds.info || {})}.`;
          existing.appendChild(h("option", { value: ds.id, selected: true }, `#${ds.id} ${ds.name}`));
        } catch (err) {
          status.textContent = "";
          slot.error.textContent = err.message;
        }
      },
    },
  });
  slot.container.append(
    h(
      "div",
      { class: "upload-widget" },
      h("label", { for: "upload-file" }, "Upload an .npz (x_train, y_train, x_test, y_test)"),
      file,
      existing,
      status,
    ),
  );
  api
    .listDatasets()
    .then((res) => {
      for (const ds of res.data || [])
        existing.appendChild(h("option", { value: ds.id }, `#${ds.id} ${ds.name} · ${fmt.bytes(ds.size_bytes)}`));
    })
    .catch(() => {});
}

/** A one-line verdict of what each technique can do to an uploaded model, from its preflight:
 * "pruning yes · QAT with a fix · clustering yes · int8 no". */
function techniqueVerdicts(preflight) {
  const names = { prune: "pruning", qat: "QAT", cluster: "clustering", int8: "int8" };
  const said = { yes: "yes", fix: "with a fix", no: "no" };
  return Object.entries(names)
    .map(([key, label]) => `${label} ${said[preflight?.techniques?.[key]?.status] || "?"}`)
    .join(" · ");
}

/**
 * Beside "Uploaded model id": pick a model uploaded on the Models page (or arrive with
 * ?model=ID from there); the note says its input, output and what each technique can do.
 */
function modelWidget(form) {
  const slot = form.slots.get("model.upload_id");
  if (!slot || !slot.input) return;
  const idInput = slot.input;
  const note = h("p", { class: "muted", id: "model-upload-note", "aria-live": "polite" });
  const byId = new Map();
  const describe = () => {
    const m = byId.get(Number(idInput.value));
    if (!m) {
      note.textContent = idInput.value ? "" : "Leave empty to build the architecture above.";
      return;
    }
    const p = m.preflight || {};
    const io = (p.inputs || []).map((t) => (t.shape || []).slice(1).join("×")).join(", ");
    const out = (p.outputs || []).map((t) => `${(t.shape || []).slice(-1)[0]} ${t.kind || "outputs"}`).join(", ");
    const only =
      m.format === "tflite"
        ? " Measured as it is: no training, techniques or exports."
        : m.format === "saved_model"
          ? " Converted and measured: exports only, training.epochs 0."
          : "";
    note.textContent = `${m.name}: ${m.format}${m.keras_flavour ? ` (${m.keras_flavour})` : ""}, input ${io || "?"}, ${out || "?"}. ${techniqueVerdicts(p)}.${only}`;
  };
  const picker = h(
    "select",
    {
      id: "model-existing",
      "aria-label": "Uploaded models",
      on: {
        change: (e) => {
          idInput.value = e.target.value;
          idInput.dispatchEvent(new Event("input", { bubbles: true }));
          selfScaling(byId.get(Number(e.target.value)));
          measuredOnly(byId.get(Number(e.target.value)));
          describe();
        },
      },
    },
    h("option", { value: "" }, "Build the architecture (no uploaded model)"),
  );
  // A model whose first layer scales its inputs (Rescaling, Normalization) takes raw values:
  // scaling them again would feed it near-black images. The server resolves the default the
  // same way (backend/dispatch/submission.with_resolved_defaults); the form sends every field.
  const selfScaling = (m) => {
    const first = m?.preflight?.layers?.[0]?.class;
    const normalize = form.slots.get("dataset.normalize");
    if (!normalize?.input || !["Rescaling", "Normalization"].includes(first)) return;
    normalize.input.value = "none";
    normalize.input.dispatchEvent(new Event("change", { bubbles: true }));
    toast(`Normalize set to none: ${m.name} starts with a ${first} layer and scales its own inputs`);
  };
  // A .tflite is measured as it is (no training, no exports); a SavedModel is converted and
  // exported but not trained: set the fields the server would otherwise refuse.
  const measuredOnly = (m) => {
    if (!m || (m.format !== "tflite" && m.format !== "saved_model")) return;
    const epochs = form.slots.get("training.epochs");
    if (epochs?.input) {
      epochs.input.value = "0";
      epochs.input.dispatchEvent(new Event("input", { bubbles: true }));
    }
    const exports = form.slots.get("exports");
    if (m.format === "tflite" && exports?.container) {
      for (const box of exports.container.querySelectorAll("input[type=checkbox]")) box.checked = false;
      exports.input?.dispatchEvent(new Event("change", { bubbles: true }));
    }
  };
  idInput.addEventListener("input", describe);
  slot.container.append(h("div", { class: "upload-widget" }, picker, note));
  const wanted = new URLSearchParams(window.location.search).get("model");
  api
    .listModels()
    .then((res) => {
      for (const m of res.data || []) {
        byId.set(m.id, m);
        picker.appendChild(h("option", { value: m.id }, `#${m.id} ${m.name} · ${m.format}`));
      }
      if (wanted && byId.has(Number(wanted))) {
        picker.value = wanted;
        picker.dispatchEvent(new Event("change"));
      }
      describe();
    })
    .catch(() => {});
}

function parseValue(text, schema) {
  if (schema.type === "array") {
    const set = text
      .split("+")
      .map((x) => x.trim())
      .filter(Boolean);
    return set.length && set.every((x) => schema.items.enum.includes(x)) ? set : undefined;
  }
  if (schema.enum) return schema.enum.find((o) => String(o) === text);
  if (schema.type === "boolean") return text === "true" ? true : text === "false" ? false : undefined;
  const n = Number(text);
  if (!Number.isFinite(n)) return undefined;
  if (schema.type === "integer" && !Number.isInteger(n)) return undefined;
  return n;
}

function rangeText(schema) {
  const parts = [];
  if (schema.minimum !== undefined) parts.push(`≥ ${schema.minimum}`);
  if (schema.exclusiveMinimum !== undefined) parts.push(`> ${schema.exclusiveMinimum}`);
  if (schema.maximum !== undefined) parts.push(`≤ ${schema.maximum}`);
  if (schema.exclusiveMaximum !== undefined) parts.push(`< ${schema.exclusiveMaximum}`);
  return `${schema.type === "integer" ? "whole number" : "number"}${parts.length ? `, ${parts.join(" and ")}` : ""}; comma-separated values`;
}
