// Runs page: filter, sort, select for Compare, cancel / retry / delete, edit tags and notes,
// live status by polling while any listed run is queued or running.

import * as api from "../api.js";
import { debounce, h, replace } from "../dom.js";
import * as fmt from "../format.js";
import {
  emptyState,
  errorState,
  loadingState,
  mountLayout,
  pageHeader,
  progressBar,
  statusBadge,
  toast,
} from "../layout.js";
import { compareHref, drawParcoords } from "../parcoords.js";
import { poll } from "../poll.js";
import { VOCAB } from "../vocabulary.js";

const PAGE_SIZE = 50;
// Every column is sorted by the API (over all runs, not the loaded page); the page's key
// "duration_seconds" is the API's "duration".
const API_SORT_KEY = { duration_seconds: "duration" };
const SORTABLE = {
  name: "Name",
  created_at: "Created",
  status: "Status",
  accuracy: "Accuracy",
  size_bytes: "Size",
  latency_p50_ms: "p50",
  duration_seconds: "Duration",
};

const main = mountLayout("runs", "Runs");
const params = new URLSearchParams(window.location.search);
const state = {
  filters: {
    experiment: params.get("experiment") || "",
    status: params.get("status") || "",
    tag: params.get("tag") || "",
    q: params.get("q") || "",
    // one seed group's runs (a run's group_key; the compare page and run page link here)
    group: params.get("group") || "",
  },
  sort: params.get("sort") || "-created_at",
  offset: Number(params.get("offset")) || 0,
  runs: [],
  count: 0,
  selected: new Set((params.get("selected") || "").split(",").filter(Boolean).map(Number)),
  editing: null, // run id whose tags/notes editor is open
  parcoords: params.get("view") === "parcoords", // the parallel-coordinates view is open
  loaded: false,
  error: null,
};
let poller = null;
let signature = "";

// ---- skeleton -------------------------------------------------------------------------
const compareBtn = h(
  "button",
  { type: "button", class: "btn btn-primary", on: { click: openCompare } },
  "Compare selected",
);
const header = pageHeader("Runs", {
  subtitle: "Every training and optimization job, newest first.",
  actions: [compareBtn, h("a", { class: "btn", href: "/launch" }, "New run")],
});
const experimentSelect = h(
  "select",
  { "aria-label": "Experiment", on: { change: (e) => setFilter("experiment", e.target.value) } },
  h("option", { value: "" }, "All experiments"),
);
const statusSelect = h(
  "select",
  { "aria-label": "Status", on: { change: (e) => setFilter("status", e.target.value) } },
  h("option", { value: "" }, "Any status"),
  VOCAB.statuses.map((s) => h("option", { value: s, selected: state.filters.status === s }, s)),
);
const tagInput = h("input", {
  type: "text",
  placeholder: "Tag",
  "aria-label": "Tag",
  value: state.filters.tag,
  on: { input: debounce((e) => setFilter("tag", e.target.value.trim()), 300) },
});
const searchInput = h("input", {
  type: "search",
  placeholder: "Search name, recipe, notes…",
  "aria-label": "Search runs",
  value: state.filters.q,
  on: { input: debounce((e) => setFilter("q", e.target.value.trim()), 300) },
});
const clearBtn = h("button", { type: "button", class: "btn btn-link", on: { click: clearFilters } }, "Clear filters");
const parcoordsBtn = h(
  "button",
  {
    type: "button",
    class: "btn btn-sm",
    id: "parcoords-toggle",
    "aria-pressed": String(state.parcoords),
    title: "Spec values and headline figures of the listed runs as parallel coordinates; brush axes to select",
    on: { click: toggleParcoords },
  },
  "Parallel coordinates",
);
const liveNote = h("span", { class: "muted", "aria-live": "polite" });
const toolbar = h(
  "div",
  { class: "toolbar", role: "search" },
  searchInput,
  experimentSelect,
  statusSelect,
  tagInput,
  clearBtn,
  parcoordsBtn,
  h("span", { class: "grow" }),
  liveNote,
);
const pcCard = h("section", { class: "card chart-card", id: "parcoords-card", hidden: true });
const body = h("div", {}, loadingState("Loading runs…"));
replace(main, header, toolbar, pcCard, body);

// ---- data -----------------------------------------------------------------------------
function query() {
  const desc = state.sort.startsWith("-");
  const key = state.sort.replace(/^-/, "");
  const sort = `${desc ? "-" : ""}${API_SORT_KEY[key] || key}`;
  return { ...state.filters, sort, limit: PAGE_SIZE, offset: state.offset };
}

function syncUrl() {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(state.filters)) if (v) p.set(k, v);
  if (state.sort !== "-created_at") p.set("sort", state.sort);
  if (state.offset) p.set("offset", String(state.offset));
  if (state.parcoords) p.set("view", "parcoords");
  const qs = p.toString();
  history.replaceState(null, "", qs ? `/?${qs}` : "/");
}

async function load() {
  const q = query();
  const page = await api.listRuns(q);
  // the order is part of what is shown: a new sort re-renders even when the runs are the same
  const sig = JSON.stringify([
    q.sort,
    page.count,
    page.data.map((r) => [r.id, r.status, r.progress, r.name, r.tags, r.notes, r.headline, r.finished_at]),
  ]);
  const changed = sig !== signature || !state.loaded;
  signature = sig;
  state.runs = page.data;
  state.count = page.count;
  state.loaded = true;
  state.error = null;
  if (changed && state.editing === null)
    render(); // never re-render under the user's cursor
  else if (changed) renderLiveCells();
  return changed;
}

function active() {
  return state.runs.some((r) => !fmt.isTerminal(r.status));
}

function startPolling() {
  if (poller) poller.stop();
  liveNote.textContent = "";
  poller = poll(
    async () => {
      const changed = await load();
      const done = !active();
      liveNote.textContent = done ? "" : "Live: updating while runs are active";
      return { changed, done };
    },
    // "visible within 2 s": never wait longer than 2 s while something is active
    { min: 1000, max: 2000, onError: (e) => showError(e) },
  );
}

// ---- parallel coordinates -------------------------------------------------------------
function toggleParcoords() {
  state.parcoords = !state.parcoords;
  parcoordsBtn.setAttribute("aria-pressed", String(state.parcoords));
  syncUrl();
  loadParcoords();
}

/** The view of the runs the filters select (all pages, newest 500), drawn from /api/parcoords. */
async function loadParcoords() {
  pcCard.hidden = !state.parcoords;
  if (!state.parcoords) return;
  replace(pcCard, loadingState("Loading parallel coordinates…"));
  try {
    const table = await api.getParcoords(state.filters);
    const compare = h("a", { class: "btn btn-primary btn-sm", id: "parcoords-compare" });
    const chart = h("div", { class: "chart", id: "parcoords-chart" });
    const shown = table.rows.length;
    const notes = [
      table.count > table.limit ? `the newest ${table.limit} of ${table.count} runs` : null,
      table.left_out ? `${table.left_out} without a measured model not drawn` : null,
    ].filter(Boolean);
    replace(
      pcCard,
      h(
        "div",
        { class: "card-head" },
        h(
          "h2",
          { class: "card-title" },
          `Parallel coordinates (${shown} run${shown === 1 ? "" : "s"})`,
          h("span", { class: "muted" }, notes.length ? ` · ${notes.join(" · ")}` : ""),
        ),
        h("span", { class: "muted" }, "Drag along an axis to select; click a selection to clear it. "),
        compare,
      ),
      shown >= 2
        ? chart
        : emptyState("Nothing to draw", "Parallel coordinates need at least two runs with a measured model."),
    );
    if (shown < 2) {
      compare.remove();
      return;
    }
    await drawParcoords(chart, table, (ids) => {
      const href = compareHref(ids);
      compare.textContent = `Compare selected (${ids.length})`;
      compare.dataset.runIds = ids.join(",");
      if (href) compare.href = href;
      else compare.removeAttribute("href");
      compare.classList.toggle("disabled", !href);
      compare.title = href ? "" : ids.length ? "The compare page takes at most 200 runs" : "No run selected";
    });
  } catch (err) {
    replace(pcCard, errorState(err, loadParcoords));
  }
}

async function refresh() {
  try {
    await load();
    if (active()) startPolling();
  } catch (err) {
    showError(err);
  }
}

function showError(err) {
  state.error = err;
  if (!state.loaded) replace(body, errorState(err, refresh));
  else toast(err.message, "error");
}

async function loadExperiments() {
  try {
    const res = await api.listExperiments();
    for (const e of res.data)
      experimentSelect.appendChild(
        h("option", { value: e.name, selected: state.filters.experiment === e.name }, e.name),
      );
    if (state.filters.experiment && !res.data.some((e) => e.name === state.filters.experiment)) {
      experimentSelect.appendChild(
        h("option", { value: state.filters.experiment, selected: true }, state.filters.experiment),
      );
    }
  } catch {
    // the filter stays usable with "All experiments"; the table shows the real error
  }
}

function setFilter(key, value) {
  if (state.filters[key] === value) return;
  state.filters[key] = value;
  state.offset = 0;
  syncUrl();
  refresh();
  loadParcoords();
}

function clearFilters() {
  state.filters = { experiment: "", status: "", tag: "", q: "", group: "" };
  experimentSelect.value = "";
  statusSelect.value = "";
  tagInput.value = "";
  searchInput.value = "";
  state.offset = 0;
  syncUrl();
  refresh();
  loadParcoords();
}

function setSort(key) {
  state.sort = state.sort === `-${key}` ? key : `-${key}`;
  state.offset = 0;
  syncUrl();
  refresh();
}

function openCompare() {
  if (state.selected.size === 0) return;
  window.location.href = `/compare?runs=${[...state.selected].join(",")}`;
}

// ---- actions --------------------------------------------------------------------------
async function act(label, fn) {
  try {
    await fn();
    toast(label);
    await load();
    render();
    if (active()) startPolling();
  } catch (err) {
    toast(err.message, "error");
  }
}

const cancel = (run) => act(`Cancelled “${run.name}”`, () => api.cancelRun(run.id));
const retry = (run) => act(`Retrying “${run.name}” as a new attempt`, () => api.retryRun(run.id));
function remove(run) {
  if (!window.confirm(`Delete run #${run.id} “${run.name}” with its metrics and models? This cannot be undone.`))
    return;
  state.selected.delete(run.id);
  act(`Deleted “${run.name}”`, () => api.deleteRun(run.id));
}

// ---- rendering ------------------------------------------------------------------------
function sortHeader(key, label, num = false) {
  const dir = state.sort === key ? "ascending" : state.sort === `-${key}` ? "descending" : undefined;
  return h(
    "th",
    { scope: "col", class: num ? "num" : undefined, "aria-sort": dir },
    h(
      "button",
      { type: "button", class: "sort", "aria-pressed": dir ? "true" : "false", on: { click: () => setSort(key) } },
      label,
      dir === "ascending" ? " ▲" : dir === "descending" ? " ▼" : "",
    ),
  );
}

function statusCell(run) {
  const cell = h("div", { class: "status-cell", dataset: { runStatus: run.id } }, statusBadge(run.status));
  if (run.status === "running") {
    cell.appendChild(progressBar(run.progress, `Run ${run.id} progress`));
    cell.appendChild(
      h(
        "div",
        { class: "muted mono" },
        `${fmt.percent(run.progress)}${run.eta_seconds ? ` · ETA ${fmt.duration(run.eta_seconds)}` : ""}`,
      ),
    );
  } else if (run.status === "failed" && run.error) {
    cell.appendChild(h("div", { class: "muted status-error", title: run.error }, run.error.split("\n")[0]));
  }
  return cell;
}

function rowFor(run) {
  const checked = state.selected.has(run.id);
  const checkbox = h("input", {
    type: "checkbox",
    checked,
    "aria-label": `Select run ${run.id} for comparison`,
    on: {
      change: (e) => {
        if (e.target.checked) state.selected.add(run.id);
        else state.selected.delete(run.id);
        e.target.closest("tr").classList.toggle("selected", e.target.checked);
        updateCompareButton();
      },
    },
  });
  const hl = run.headline || {};
  const terminal = fmt.isTerminal(run.status);
  return h(
    "tr",
    { class: checked ? "selected" : undefined, dataset: { runId: run.id } },
    h("td", {}, checkbox),
    h(
      "td",
      {},
      h("a", { class: "run-name", href: `/runs/${run.id}`, dataset: { runLink: run.id } }, run.name),
      h("span", { class: "muted" }, ` #${run.id}`),
      run.group_size > 1
        ? h(
            "a",
            {
              class: "muted group-link",
              href: `/?group=${run.group_key}`,
              title: `one of ${run.group_size} runs of the same recipe over different seeds (group ${run.group_key.slice(0, 12)})`,
            },
            ` · seed group ×${run.group_size}`,
          )
        : null,
      run.retry_of_run_id
        ? h(
            "span",
            { class: "muted", dataset: { retryOf: run.retry_of_run_id } },
            " · retry of ",
            h("a", { href: `/runs/${run.retry_of_run_id}` }, `#${run.retry_of_run_id}`),
          )
        : null,
      run.control_of_run_id
        ? h(
            "span",
            { class: "muted", dataset: { controlOf: run.control_of_run_id } },
            " · control of ",
            h("a", { href: `/runs/${run.control_of_run_id}` }, `#${run.control_of_run_id}`),
          )
        : null,
      run.tags && run.tags.length
        ? h(
            "div",
            { class: "tags" },
            run.tags.map((t) => h("span", { class: "tag" }, t)),
          )
        : null,
      run.notes ? h("div", { class: "muted summary", title: run.notes }, run.notes.split("\n")[0].slice(0, 80)) : null,
    ),
    h("td", { class: "nowrap" }, run.experiment || "–"),
    h(
      "td",
      { class: "summary" },
      run.external
        ? "external: logged by a script"
        : run.kind === "optimize"
          ? `quantizes #${run.parent_run_id} · ${(run.summary || "").split(" · ").pop()}`
          : run.summary || "–",
    ),
    h("td", { dataset: { cell: "status" } }, statusCell(run)),
    h(
      "td",
      {
        class: "nowrap",
        dataset: { cell: "model" },
        title:
          hl.format === "logged"
            ? `no measured model: accuracy is the last ${hl.accuracy_key} the script logged`
            : hl.format
              ? `${hl.format}: the model this run was made to produce`
              : "",
      },
      hl.format ? fmt.modelFormat(hl.format) : "–",
    ),
    h("td", { class: "num" }, fmt.accuracy(hl.accuracy)),
    h(
      "td",
      { class: "num", title: hl.gzip_bytes != null ? `${fmt.bytes(hl.gzip_bytes)} gzipped` : "" },
      fmt.bytes(hl.size_bytes),
    ),
    h("td", { class: "num" }, fmt.ms(hl.latency_p50_ms)),
    h("td", { class: "num" }, fmt.duration(run.duration_seconds)),
    h("td", { class: "num", title: fmt.dateTime(run.created_at) }, fmt.relative(run.created_at)),
    h(
      "td",
      {},
      h(
        "div",
        { class: "row-actions" },
        h(
          "button",
          {
            type: "button",
            class: "btn btn-sm",
            "aria-expanded": state.editing === run.id ? "true" : "false",
            on: { click: () => toggleEditor(run.id) },
          },
          "Edit",
        ),
        !terminal
          ? h("button", { type: "button", class: "btn btn-sm btn-danger", on: { click: () => cancel(run) } }, "Cancel")
          : null,
        fmt.isRetryable(run.status) && !run.external
          ? h("button", { type: "button", class: "btn btn-sm", on: { click: () => retry(run) } }, "Retry")
          : null,
        terminal
          ? h(
              "button",
              {
                type: "button",
                class: "btn btn-sm btn-danger",
                "aria-label": `Delete run ${run.id}`,
                on: { click: () => remove(run) },
              },
              "Delete",
            )
          : null,
      ),
    ),
  );
}

function editorRow(run) {
  const tags = h("input", {
    type: "text",
    id: "edit-tags",
    value: (run.tags || []).join(", "),
    placeholder: "baseline, sweep-3",
  });
  const notes = h("textarea", { id: "edit-notes", rows: "3" });
  notes.value = run.notes || "";
  const error = h("p", { class: "field-error", role: "alert" });
  async function save() {
    const patch = {
      tags: tags.value
        .split(",")
        .map((t) => t.trim())
        .filter(Boolean),
      notes: notes.value,
    };
    try {
      await api.updateRun(run.id, patch);
      state.editing = null;
      toast("Saved tags and notes");
      await load();
      render();
    } catch (err) {
      error.textContent = err.message;
    }
  }
  function onKey(e) {
    if (e.key === "Escape") toggleEditor(run.id);
  }
  return h(
    "tr",
    { class: "editor-row", on: { keydown: onKey } },
    h(
      "td",
      { colspan: "12", class: "editor-cell" },
      h(
        "div",
        { class: "editor" },
        h("div", {}, h("label", { for: "edit-tags" }, "Tags (comma-separated)"), tags),
        h("div", {}, h("label", { for: "edit-notes" }, "Notes"), notes),
        h(
          "div",
          { class: "actions" },
          h("button", { type: "button", class: "btn btn-primary", on: { click: save } }, "Save"),
          h("button", { type: "button", class: "btn", on: { click: () => toggleEditor(run.id) } }, "Cancel"),
        ),
      ),
      error,
    ),
  );
}

function toggleEditor(id) {
  state.editing = state.editing === id ? null : id;
  render();
  if (state.editing !== null) document.getElementById("edit-tags")?.focus();
}

function updateCompareButton() {
  const n = state.selected.size;
  compareBtn.disabled = n === 0;
  compareBtn.textContent = n ? `Compare ${n} selected` : "Compare selected";
}

function filtered() {
  return Object.values(state.filters).some(Boolean);
}

function render() {
  updateCompareButton();
  if (!state.runs.length) {
    replace(
      body,
      filtered()
        ? emptyState(
            "No runs match these filters",
            "Try another status or tag, or clear the filters.",
            h("button", { type: "button", class: "btn", on: { click: clearFilters } }, "Clear filters"),
          )
        : emptyState(
            "No runs yet",
            "Launch a training run or a sweep; it appears here and updates live.",
            h("a", { class: "btn btn-primary", href: "/launch" }, "Launch a run"),
          ),
    );
    return;
  }
  const allBox = h("input", {
    type: "checkbox",
    "aria-label": "Select all runs on this page",
    checked: state.runs.every((r) => state.selected.has(r.id)),
    on: {
      change: (e) => {
        for (const r of state.runs) e.target.checked ? state.selected.add(r.id) : state.selected.delete(r.id);
        render();
      },
    },
  });
  const rows = [];
  for (const run of state.runs) {
    rows.push(rowFor(run));
    if (state.editing === run.id) rows.push(editorRow(run));
  }
  const from = state.offset + 1;
  const to = state.offset + state.runs.length;
  replace(
    body,
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "data", id: "runs-table" },
        h("caption", { class: "sr-only" }, "Runs"),
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", { scope: "col" }, allBox),
            sortHeader("name", SORTABLE.name),
            h("th", { scope: "col" }, "Experiment"),
            h("th", { scope: "col" }, "Recipe"),
            sortHeader("status", SORTABLE.status),
            h(
              "th",
              { scope: "col", title: "The deployable model whose figures follow: the last export of the recipe" },
              "Model",
            ),
            sortHeader("accuracy", SORTABLE.accuracy, true),
            sortHeader("size_bytes", SORTABLE.size_bytes, true),
            sortHeader("latency_p50_ms", SORTABLE.latency_p50_ms, true),
            sortHeader("duration_seconds", SORTABLE.duration_seconds, true),
            sortHeader("created_at", SORTABLE.created_at, true),
            h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Actions")),
          ),
        ),
        h("tbody", {}, rows),
      ),
    ),
    h(
      "div",
      { class: "pager" },
      h("span", {}, `${from}–${to} of ${state.count} runs`),
      h(
        "span",
        { class: "actions" },
        h(
          "button",
          { type: "button", class: "btn btn-sm", disabled: state.offset === 0, on: { click: () => page(-1) } },
          "Previous",
        ),
        h(
          "button",
          { type: "button", class: "btn btn-sm", disabled: to >= state.count, on: { click: () => page(1) } },
          "Next",
        ),
      ),
    ),
  );
}

/** While an editor is open, only the status cells change (the form keeps its focus). */
function renderLiveCells() {
  for (const run of state.runs) {
    const cell = body.querySelector(`tr[data-run-id="${run.id}"] td[data-cell="status"]`);
    if (cell) replace(cell, statusCell(run));
  }
}

function page(delta) {
  state.offset = Math.max(0, state.offset + delta * PAGE_SIZE);
  syncUrl();
  refresh();
}

// refresh on return to the tab: new runs may have been launched elsewhere
window.addEventListener("focus", () => {
  if (state.loaded && (!poller || !active())) refresh();
});

loadExperiments();
refresh();
loadParcoords();
