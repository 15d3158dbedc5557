// The run page's "Measured on devices" card (issue 18): ask for the run's TFLite variants to be
// measured on an online device worker (`optiboard worker --device rpi4`), and list what each
// device measured, with what measured it. Polls while a measurement is queued or running.

import * as api from "./api.js";
import { h, replace } from "./dom.js";
import * as fmt from "./format.js";
import { errorState, statusBadge, table, toast } from "./layout.js";
import { VOCAB } from "./vocabulary.js";

const POLL_MS = 1500;

function machine(fp) {
  if (!fp) return "";
  const parts = [fp.machine, fp.cpu, fp.cpu_count != null ? `${fp.cpu_count} CPUs` : null].filter(Boolean);
  return parts.join(" · ");
}

// the protocol's stability guard (issue 18 item 1): a flagged figure is not shown as a clean one
const latency = (m, key) =>
  m.figures?.latency_unstable
    ? h("span", { class: "neg", title: "spread above the guard after a re-measurement" }, `${fmt.ms(m.figures[key])}*`)
    : fmt.ms(m.figures?.[key]);

const COLUMNS = [
  { label: "Device", cell: (m) => h("strong", {}, m.device) },
  { label: "Format", cell: (m) => h("span", { class: "mono" }, fmt.modelFormat(m.format)) },
  { label: "Status", cell: (m) => statusBadge(m.status) },
  { label: "p50", num: true, cell: (m) => latency(m, "latency_p50_ms") },
  { label: "p90", num: true, cell: (m) => latency(m, "latency_p90_ms") },
  { label: "p99", num: true, cell: (m) => latency(m, "latency_p99_ms") },
  { label: "Runs timed", num: true, cell: (m) => fmt.integer(m.figures?.latency_count) },
  { label: "Peak memory", num: true, cell: (m) => fmt.bytes(m.figures?.peak_memory_bytes) },
  {
    label: "Measured by",
    cell: (m) => [h("div", {}, m.worker || "–"), h("div", { class: "muted" }, machine(m.fingerprint))],
  },
  {
    label: "When / why",
    cls: "technique-cell",
    cell: (m) =>
      m.error
        ? h("span", { class: "field-error" }, m.error)
        : m.measured_at
          ? fmt.dateTime(m.measured_at)
          : h("span", { class: "muted" }, "waiting for the device"),
  },
];

/** Mount the card into `slot` for `run` (its `variants` decide whether there is anything to measure). */
export function mountDevices(slot, run, variants) {
  // TFLite exports, and an uploaded model measured as a .tflite file (a .tflite or SavedModel upload)
  const tflite = (variants || []).filter(
    (v) =>
      String(v.format).startsWith("tflite") ||
      (v.format === VOCAB.uploaded_format && String(v.extra?.measured_as || "").startsWith("tflite")),
  );
  if (run.status !== "succeeded" || !tflite.length) {
    replace(slot);
    return;
  }
  const state = { devices: null, measurements: [], error: null, timer: null, sending: false };

  async function refresh() {
    clearTimeout(state.timer);
    try {
      const res = await api.getMeasurements(run.id);
      state.measurements = res.data;
      state.error = null;
    } catch (err) {
      state.error = err;
    }
    render();
    if (state.measurements.some((m) => m.status === "queued" || m.status === "running")) {
      state.timer = setTimeout(refresh, POLL_MS);
    }
  }

  async function loadDevices() {
    try {
      state.devices = (await api.listDevices()).data;
    } catch (err) {
      state.devices = err;
    }
    render();
  }

  async function measure(e) {
    e.preventDefault();
    const device = slot.querySelector("#device-select")?.value;
    if (!device) return;
    state.sending = true;
    render();
    try {
      const res = await api.measureOnDevice(run.id, device);
      toast(`${res.count} variant${res.count === 1 ? "" : "s"} sent to ${device}`);
    } catch (err) {
      toast(err.message, "error");
    }
    state.sending = false;
    refresh();
  }

  function picker() {
    const d = state.devices;
    if (d === null) return h("p", { class: "muted" }, "Looking for online devices…");
    if (d instanceof Error) return h("p", { class: "field-error" }, `Devices unavailable: ${d.message}`);
    if (!d.length)
      return h(
        "p",
        { class: "muted", id: "no-device" },
        "No device online. Start one on the target machine with ",
        h("code", {}, "optiboard worker --device rpi4"),
        ", then ",
        h("button", { type: "button", class: "btn btn-sm", on: { click: loadDevices } }, "look again"),
        ".",
      );
    return h(
      "form",
      { class: "toolbar", id: "measure-form", on: { submit: measure } },
      h("label", { for: "device-select" }, "Device"),
      h(
        "select",
        { id: "device-select" },
        d.map((x) => h("option", { value: x.device }, `${x.device} — ${machine(x.hardware)}`)),
      ),
      h(
        "button",
        { type: "submit", class: "btn btn-primary", disabled: state.sending },
        `Measure ${tflite.length} TFLite variant${tflite.length === 1 ? "" : "s"}`,
      ),
      h("button", { type: "button", class: "btn btn-sm", on: { click: loadDevices } }, "Refresh devices"),
    );
  }

  function render() {
    const list = state.error
      ? errorState(state.error, refresh)
      : state.measurements.length
        ? table(COLUMNS, state.measurements, { caption: "Measurements on devices", id: "device-measurements" })
        : h("p", { class: "muted" }, "Not measured on any device yet.");
    replace(
      slot,
      h(
        "section",
        { class: "card", id: "devices-card" },
        h(
          "h2",
          { class: "card-title" },
          "Measured on devices ",
          h("span", { class: "muted" }, "the same latency protocol, on the target machine"),
        ),
        picker(),
        list,
      ),
    );
  }

  render();
  loadDevices();
  refresh();
}
