// A variant's measurements as the latency protocol recorded them (issue 18): the headline p90
// with its spread, the unstable flag, start-up, memory, the microcontroller estimate, and the
// per-op cost table. Pure functions of a variant (GET /api/runs/{id}/variants) returning nodes.

import { h } from "./dom.js";
import * as fmt from "./format.js";
import { table } from "./layout.js";

const DASH = "–";
const finite = (v) => typeof v === "number" && Number.isFinite(v);

/** A duration given in milliseconds, three significant digits, in µs below 1 ms. */
export function ms(v) {
  if (!finite(v)) return DASH;
  return v < 1 ? `${Number((v * 1000).toPrecision(3))} µs` : `${Number(v.toPrecision(3))} ms`;
}

const isKeras = (v) => v.extra?.protocol?.runtime === "keras" || v.format === "keras";

/** Headline latency: p90 (MLPerf single-stream), p50 · p99 and ± std below, or the unstable flag. */
export function latencyCell(v) {
  if (!finite(v.latency_p90_ms)) {
    // stored before the protocol (p50 only) or not measured (measurement.protocol "off")
    return finite(v.latency_p50_ms)
      ? h("span", { title: "p50; measured before the p90 protocol" }, ms(v.latency_p50_ms))
      : DASH;
  }
  const spread = [
    h("div", { class: "hint nowrap" }, `p50 ${ms(v.latency_p50_ms)} · p99 ${ms(v.latency_p99_ms)}`),
    finite(v.latency_std_ms)
      ? h("div", { class: "hint nowrap" }, `mean ${ms(v.latency_mean_ms)} ± ${ms(v.latency_std_ms)}`)
      : null,
  ];
  const where = isKeras(v)
    ? h(
        "div",
        { class: "hint", title: "wall time of a Python call of the Keras model: not comparable with TFLite" },
        "Python call",
      )
    : null;
  if (v.latency_unstable) {
    return h(
      "div",
      { class: "latency-unstable" },
      h(
        "span",
        {
          class: "badge badge-plain status-cancelled",
          title: `coefficient of variation ${fmt.number(v.latency_cv, 2)}; load ${fmt.number(v.load_avg_1m, 2)}`,
        },
        "unstable: machine busy",
      ),
      h("div", { class: "hint nowrap" }, `p90 ${ms(v.latency_p90_ms)} (not a clean figure)`),
      where,
    );
  }
  return h("div", {}, h("span", { class: "nowrap" }, ms(v.latency_p90_ms)), spread, where);
}

/** Peak memory of a fresh process loading and running it; the microcontroller estimate for int8. */
export function memoryCell(v) {
  const mcu = finite(v.mcu_ram_bytes)
    ? h(
        "div",
        { class: "hint", title: "microcontroller estimate: arena (activations) RAM and flash (model bytes)" },
        h("div", { class: "nowrap" }, `MCU RAM ${fmt.bytes(v.mcu_ram_bytes)}`),
        h("div", { class: "nowrap" }, `flash ${fmt.bytes(v.mcu_flash_bytes)}`),
      )
    : null;
  if (!finite(v.peak_memory_bytes) && !mcu) return DASH;
  return h("div", {}, finite(v.peak_memory_bytes) ? fmt.bytes(v.peak_memory_bytes) : DASH, mcu);
}

function macs(n) {
  if (!finite(n)) return DASH;
  if (n >= 1e9) return `${(n / 1e9).toPrecision(3)} G`;
  if (n >= 1e6) return `${(n / 1e6).toPrecision(3)} M`;
  if (n >= 1e3) return `${(n / 1e3).toPrecision(3)} k`;
  return String(n);
}

/** One sentence saying what was timed (extra.protocol), XNNPACK's share and the all-cores figure. */
export function protocolText(v) {
  const p = v.extra?.protocol || {};
  if (p.mode === "off" || !p.mode) return "Latency not measured (measurement.protocol off).";
  const parts = [];
  const floor = p.min_duration_s ? ` or ${p.min_duration_s} s, whichever is longer` : "";
  const threads = p.runtime === "keras" ? "TensorFlow's threads (Python call)" : `${p.threads} thread`;
  parts.push(
    `${p.warmup_runs} warm-up runs, then ${p.runs} runs${floor}, batch 1, ${threads}: ${fmt.integer(v.latency_count)} timed`,
  );
  if (finite(v.init_ms))
    parts.push(`start-up ${ms(v.init_ms)} (load + allocate), first run ${ms(v.first_inference_ms)}`);
  const d = v.extra?.delegate;
  if (d) parts.push(`${d.name} took ${d.delegated_ops} of ${d.total_ops} ops`);
  const all = v.extra?.latency_all_cores;
  if (all)
    parts.push(
      `all ${all.threads} cores: p50 ${ms(all.p50_ms)}, p90 ${ms(all.p90_ms)}${all.unstable ? " (unstable)" : ""}`,
    );
  if (finite(v.load_avg_1m)) parts.push(`load average ${v.load_avg_1m.toFixed(2)}`);
  if ((p.attempts || []).length > 1) parts.push("re-measured once (spread above the guard)");
  return `${parts.join("; ")}.`;
}

const OP_COLUMNS = (total) => [
  { label: "Op", cell: (r) => h("span", { class: "mono" }, r.op) },
  { label: "Input dtype", cell: (r) => h("span", { class: "mono" }, r.dtype) },
  { label: "Count", num: true, cell: (r) => fmt.integer(r.count) },
  { label: "MACs", num: true, cell: (r) => macs(r.macs) },
  { label: "Share of MACs", num: true, cell: (r) => (total > 0 ? fmt.percent(r.macs / total, 1) : DASH) },
  {
    label: "Time share",
    num: true,
    title: "LiteRT's Python interpreter exposes no per-op profiler",
    cell: (r) => (finite(r.time_share) ? fmt.percent(r.time_share, 1) : DASH),
  },
];

/** The cost card's body for one variant: protocol sentence, float ops, and the top ops. */
export function costDetails(v, { top = 8 } = {}) {
  const rows = v.extra?.op_profile || [];
  const total = rows.reduce((s, r) => s + (r.macs || 0), 0);
  const floatOps = v.extra?.float_ops || [];
  const int8 = v.format === "tflite-int8";
  return h(
    "div",
    { class: "stack", id: "variant-cost" },
    h("p", { class: "muted", id: "protocol-text" }, protocolText(v)),
    int8
      ? h(
          "p",
          { id: "float-ops" },
          floatOps.length
            ? [h("span", { class: "badge badge-plain status-cancelled" }, "left in float"), ` ${floatOps.join(", ")}`]
            : "Every op runs in int8: quantization reached all layers.",
        )
      : null,
    rows.length
      ? [
          table(OP_COLUMNS(total), rows.slice(0, top), { caption: "Ops by type", id: "op-table" }),
          h(
            "p",
            { class: "hint" },
            `${macs(total)} MACs in all${rows.length > top ? `; ${rows.length - top} more op types not shown` : ""}. `,
            "MACs from the graph's tensor shapes; time share needs a per-op profiler, which LiteRT's Python API does not offer.",
          ),
        ]
      : h("p", { class: "muted" }, "No op table: only TFLite files are read op by op."),
  );
}
