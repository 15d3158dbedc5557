// Human-readable numbers, sizes, durations and times; "–" for missing values.

const DASH = "–";
const finite = (v) => typeof v === "number" && Number.isFinite(v);

/** Bytes in binary units: divided by 1024, so named KiB/MiB/GiB (IEC 80000-13). */
export function bytes(n) {
  if (!finite(n)) return DASH;
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let i = 0;
  while (Math.abs(value) >= 1024 && i < units.length - 1) {
    value /= 1024;
    i += 1;
  }
  return i === 0 ? `${Math.round(value)} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${units[i]}`;
}

export function duration(seconds) {
  if (!finite(seconds) || seconds < 0) return DASH;
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  if (m < 60) return s ? `${m} min ${s} s` : `${m} min`;
  const hrs = Math.floor(m / 60);
  return `${hrs} h ${m % 60} min`;
}

export const accuracy = (v) => (finite(v) ? v.toFixed(4) : DASH);
export const percent = (v, digits = 0) => (finite(v) ? `${(v * 100).toFixed(digits)}%` : DASH);
// Below 0.1 ms in µs with three significant digits: a TFLite call of a small model takes a few
// µs, and "0.001 ms" for every variant would hide a 2× difference.
export const ms = (v) =>
  finite(v)
    ? v < 0.1
      ? `${Number((v * 1000).toPrecision(3))} µs`
      : `${v < 1 ? v.toFixed(3) : v.toPrecision(3)} ms`
    : DASH;
export const integer = (v) => (finite(v) ? Math.round(v).toLocaleString("en-US") : DASH);
export const ratio = (v) => (finite(v) ? `${v.toFixed(2)}×` : DASH);
export function signed(v, digits = 4) {
  if (!finite(v)) return DASH;
  return `${v > 0 ? "+" : v < 0 ? "−" : "±"}${Math.abs(v).toFixed(digits)}`;
}
export const number = (v, digits = 4) => (finite(v) ? String(Number(v.toPrecision(digits))) : DASH);

export function dateTime(iso) {
  if (!iso) return DASH;
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return DASH;
  return d.toLocaleString("en-GB", {
    year: "numeric",
    month: "short",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
  });
}

export function relative(iso, now = Date.now()) {
  if (!iso) return DASH;
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return DASH;
  const s = Math.round((now - t) / 1000);
  if (s < 5) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** Metric values arrive as numbers or "NaN"/"Infinity"/"-Infinity"; charts want null gaps. */
export const metricValue = (v) => (finite(v) ? v : null);

/** Plotly renders pseudo-HTML in names, hovers and labels: escape user text for it. */
export function plotlyText(s) {
  return String(s ?? "")
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#x27;");
}

/** A variant's format as a user names the model: "tflite-int8" → "int8", "keras" → "Keras". */
export function modelFormat(format) {
  if (!format) return DASH;
  if (format === "keras") return "Keras";
  if (format === "logged") return "logged"; // an external run's final logged accuracy, no model
  return String(format).replace(/^tflite-/, "");
}

/**
 * The run's headline (the deployable variant the run was made for, chosen by the server) as one
 * line: "int8 · 169.6 KiB · 58.1 KiB gz · 0.007 ms · 0.9380". Missing figures are left out.
 */
export function headlineText(hl) {
  if (!hl || !hl.format) return DASH;
  const parts = [modelFormat(hl.format)];
  if (finite(hl.size_bytes)) parts.push(bytes(hl.size_bytes));
  if (finite(hl.gzip_bytes)) parts.push(`${bytes(hl.gzip_bytes)} gz`);
  // p90 is the headline latency (MLPerf single-stream); runs measured before it have p50 only
  if (finite(hl.latency_p90_ms)) parts.push(`p90 ${ms(hl.latency_p90_ms)}${hl.latency_unstable ? " (unstable)" : ""}`);
  else if (finite(hl.latency_p50_ms)) parts.push(ms(hl.latency_p50_ms));
  if (finite(hl.accuracy)) parts.push(accuracy(hl.accuracy));
  return parts.join(" · ");
}

// statuses come from the server's vocabulary (GET /api/vocabulary), not a copy here
export { isRetryable, isTerminal } from "./vocabulary.js";
