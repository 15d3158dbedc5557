// Seed groups on the compare page (issue 19 item 1): the server aggregates runs that differ
// only by seed (GET /api/compare?groups=true, backend/store/groups.py); this module renders its
// group rows as "mean ± half-width" with the interval and n underneath, the differences
// against the baseline group with their Welch interval and a significant / not significant
// mark, and the "all traces" toggle of the loss chart's member curves.

import { h } from "./dom.js";
import * as fmt from "./format.js";
import { table } from "./layout.js";

const finite = (v) => typeof v === "number" && Number.isFinite(v);

/** "0.9123 ± 0.0051" over "95 % CI 0.9072–0.9174 · n=3" (one run: "n=1 · no interval"). */
function interval(row, key, show) {
  const mean = row[key];
  if (!finite(mean)) return "–";
  const n = row[`${key}_n`];
  const half = row[`${key}_half_width`];
  if (!finite(half)) {
    return h(
      "span",
      { class: "ci", title: `mean of ${n} run${n === 1 ? "" : "s"}: one value has no interval` },
      show(mean),
      h("div", { class: "muted ci-line" }, `n=${n} · no interval`),
    );
  }
  const low = row[`${key}_ci_low`];
  const high = row[`${key}_ci_high`];
  return h(
    "span",
    {
      class: "ci",
      title: `mean ${show(mean)}; 95 % confidence interval ${show(low)} to ${show(high)} (Student t, n=${n}, std ${show(row[`${key}_std`])})`,
    },
    `${show(mean)} ± ${show(half)}`,
    h("div", { class: "muted ci-line" }, `${show(low)}–${show(high)} · n=${n}`),
  );
}

const signedBy = (show) => (v) => (finite(v) ? `${v > 0 ? "+" : v < 0 ? "−" : "±"}${show(Math.abs(v))}` : "–");
const DIFFERENCES = [
  { key: "accuracy", label: "Δ accuracy", show: signedBy((v) => v.toFixed(4)) },
  { key: "f1", label: "Δ F1", show: signedBy((v) => v.toFixed(4)) },
  { key: "size_bytes", label: "Δ size", show: signedBy(fmt.bytes) },
  { key: "latency_p90_ms", label: "Δ p90", show: signedBy(fmt.ms) },
  { key: "logged_val_accuracy", label: "Δ val acc (logged)", show: signedBy((v) => v.toFixed(4)) },
];

/** One difference: "+0.0123 [+0.0040, +0.0206]" and a mark: significant (the interval excludes
 * 0), not significant, or no interval (n=1 on a side). */
function difference(d, show) {
  if (!d || !finite(d.diff)) return "–";
  if (d.interval === "no interval") {
    return h(
      "span",
      { class: "diff none", title: `n=${d.n_a} against n=${d.n_b}: a group of one run has no interval` },
      show(d.diff),
      h("div", { class: "muted ci-line" }, "no interval (n=1)"),
    );
  }
  if (d.interval === "exact") {
    // no member varies on either side (a file size, a parameter count): there is nothing to test
    return h(
      "span",
      {
        class: "diff exact",
        title: `${show(d.diff)}: every member has the same value on both sides (n=${d.n_a} against n=${d.n_b})`,
      },
      show(d.diff),
      h("div", { class: "muted ci-line" }, "exact (no spread)"),
    );
  }
  const mark = d.significant ? "significant" : "not significant";
  const what =
    d.interval === "exact"
      ? "every member has the same value: the difference is exact"
      : `Welch's t, ${d.dof.toFixed(1)} degrees of freedom`;
  return h(
    "span",
    {
      class: `diff ${d.significant ? "sig" : "nonsig"}`,
      title: `${show(d.diff)}, 95 % interval ${show(d.ci_low)} to ${show(d.ci_high)} (${what}; n=${d.n_a} against n=${d.n_b})`,
    },
    show(d.diff),
    h(
      "div",
      { class: "ci-line" },
      `[${show(d.ci_low)}, ${show(d.ci_high)}] `,
      h("b", { class: "mark" }, d.significant ? `✓ ${mark}` : `✗ ${mark}`),
    ),
  );
}

const groupLabel = (r) => [
  h("a", { href: `/?group=${r.group_key}`, title: r.group_name }, r.group_name || `group ${r.group_key.slice(0, 8)}`),
  h(
    "div",
    { class: "muted" },
    `${r.n_runs} run${r.n_runs === 1 ? "" : "s"}: ${r.run_ids.map((i) => `#${i}`).join(" ")}`,
  ),
];

const GROUP_COLUMNS = [
  { label: "Group", cls: "run-cell", cell: groupLabel },
  { label: "Format", cell: (r) => h("span", { class: "mono" }, fmt.modelFormat(r.format)) },
  { label: "Technique", cls: "technique-cell", cell: (r) => r.technique || "baseline" },
  { label: "Accuracy", num: true, cell: (r) => interval(r, "accuracy", (v) => v.toFixed(4)) },
  { label: "F1", num: true, cell: (r) => interval(r, "f1", (v) => v.toFixed(4)) },
  { label: "Size", num: true, cell: (r) => interval(r, "size_bytes", fmt.bytes) },
  { label: "Gzip", num: true, cell: (r) => interval(r, "gzip_bytes", fmt.bytes) },
  { label: "Params", num: true, cell: (r) => interval(r, "params", fmt.integer) },
  { label: "p50", num: true, cell: (r) => interval(r, "latency_p50_ms", fmt.ms) },
  { label: "p90", num: true, cell: (r) => interval(r, "latency_p90_ms", fmt.ms) },
  {
    label: "vs control",
    title:
      "Each member against its own same-budget control (same seed, same epochs, no technique): " +
      "the mean paired difference in accuracy points with its 95 % Student-t interval over seeds, and the gzip ratio",
    num: true,
    when: (rows) => rows.some((r) => r.control_run_ids?.length),
    cell: (r) => (r.vs_control_accuracy_n ? vsControl(r) : ""),
  },
  {
    label: "Pareto",
    title: "The group's means are on the Pareto front",
    cell: (r) => (r.pareto ? "✓" : ""),
  },
];

/** A group's effect net of extra training: the mean over seeds of each member's accuracy minus
 * its own control's, in points, with the paired interval and a significant / not significant
 * mark (the interval excludes 0), and the mean gzip ratio against the controls. */
function vsControl(r) {
  const points = (v) => `${v > 0 ? "+" : v < 0 ? "−" : "±"}${Math.abs(100 * v).toFixed(2)} pt`;
  const mean = r.vs_control_accuracy;
  const low = r.vs_control_accuracy_ci_low;
  const high = r.vs_control_accuracy_ci_high;
  const n = r.vs_control_accuracy_n;
  const gzip = finite(r.vs_control_gzip_ratio) ? ` · gz ${fmt.ratio(r.vs_control_gzip_ratio)}` : "";
  if (!finite(low) || !finite(high)) {
    return h(
      "span",
      { class: "diff none" },
      points(mean),
      h("div", { class: "muted ci-line" }, `n=${n} · no interval${gzip}`),
    );
  }
  const significant = low > 0 || high < 0;
  return h(
    "span",
    {
      class: `diff ${significant ? "sig" : "nonsig"}`,
      title: `accuracy against the same-budget controls: ${points(mean)}, 95 % interval ${points(low)} to ${points(high)} (paired Student t over ${n} seeds)`,
    },
    points(mean),
    h(
      "div",
      { class: "ci-line" },
      `[${points(low)}, ${points(high)}]${gzip} `,
      h("b", { class: "mark" }, significant ? "✓ significant" : "✗ not significant"),
    ),
  );
}

/** The group table: one row per seed group and format, every figure as mean ± half-width. */
export function groupTable(groups) {
  const columns = GROUP_COLUMNS.filter((c) => !c.when || c.when(groups.rows));
  return table(columns, groups.rows, {
    caption: "Seed groups: means with 95 % confidence intervals",
    id: "group-table",
    cls: "compact",
    rowClass: (r) => (r.is_baseline ? "front baseline-group" : r.pareto ? "front" : "dominated"),
  });
}

/** The differences of every other group against the baseline group, with their intervals. */
export function differencesTable(groups) {
  const rows = groups.rows.filter((r) => !r.is_baseline && r.format !== "logged");
  const columns = [
    {
      label: "Group",
      cls: "run-cell",
      cell: (r) => [groupLabel(r)[0], h("div", { class: "muted" }, fmt.modelFormat(r.format))],
    },
    ...DIFFERENCES.map((d) => ({
      label: d.label,
      num: true,
      cell: (r) => difference(r.differences[d.key], d.show),
    })),
  ];
  return table(columns, rows, {
    caption: "Differences against the baseline group",
    id: "group-differences",
    cls: "compact",
  });
}

/** The baseline group's line above the tables. */
export function groupBaselineNote(groups) {
  const base = groups.rows.find((r) => r.is_baseline);
  if (!base) return null;
  return h(
    "p",
    { class: "muted", id: "group-baseline" },
    `Mean ± half-width of the 95 % confidence interval (Student t over the group's seeds). Differences against the baseline group ${base.group_name} · ${fmt.modelFormat(base.format)} (${base.n_runs} runs), with Welch's 95 % interval: significant when it excludes 0. Latency differences against the baseline group's model of the same format.`,
  );
}

/** A checkbox that shows or hides the member runs' curves (meta.role "member") of a loss
 * figure already drawn in `div`. */
export function allTracesToggle(div, Plotly) {
  const box = h("input", {
    type: "checkbox",
    id: "all-traces",
    on: {
      change: (e) => {
        const data = div.data || [];
        const idx = data.map((t, i) => (t.meta && t.meta.role === "member" ? i : -1)).filter((i) => i >= 0);
        if (idx.length) Plotly.restyle(div, { visible: e.target.checked }, idx);
      },
    },
  });
  return h(
    "label",
    { class: "check", title: "Draw every member run's own curve under the group means" },
    box,
    " All traces",
  );
}
