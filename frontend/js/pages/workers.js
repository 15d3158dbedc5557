// Workers page: who is online, on what hardware, running which runs, and the queue length.

import * as api from "../api.js";
import { h, replace } from "../dom.js";
import * as fmt from "../format.js";
import { emptyState, errorState, loadingState, mountLayout, pageHeader } from "../layout.js";
import { poll } from "../poll.js";

const main = mountLayout("workers", "Workers");
const queue = h("div", { class: "stats" });
const body = h("div", {}, loadingState("Asking the workers…"));
replace(main, pageHeader("Workers", { subtitle: "Celery workers consuming the optiboard queue. Refreshes every few seconds." }), queue, h("div", { style: undefined, class: "stack" }, h("div"), body));

let signature = "";
let loaded = false;

function hardwareList(hw) {
  const entries = Object.entries(hw || {});
  if (!entries.length) return h("p", { class: "muted" }, "No hardware reported.");
  return h(
    "dl",
    { class: "kv" },
    entries.map(([k, v]) => [h("dt", {}, k.replace(/_/g, " ")), h("dd", {}, describe(k, v))]),
  );
}

function describe(key, value) {
  if (Array.isArray(value)) return value.length ? value.map((x) => (typeof x === "object" ? JSON.stringify(x) : String(x))).join(", ") : "none";
  if (typeof value === "number" && /bytes|memory/.test(key)) return fmt.bytes(value);
  if (value && typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function workerCard(w) {
  return h(
    "section",
    { class: "card", dataset: { worker: w.hostname } },
    h("h2", { class: "card-title" }, h("span", { class: `dot ${w.online ? "on" : ""}`, "aria-hidden": "true" }), w.hostname, h("span", { class: "muted" }, w.online ? " · online" : " · offline")),
    hardwareList(w.hardware),
    h("p", {}, h("strong", {}, "Running: "), w.active && w.active.length ? w.active.map((id, i) => [i ? ", " : "", h("a", { href: `/runs/${id}` }, `run #${id}`)]) : h("span", { class: "muted" }, "idle")),
    w.queues && w.queues.length ? h("p", { class: "muted" }, `Queues: ${w.queues.join(", ")}`) : null,
  );
}

async function tick() {
  const res = await api.listWorkers();
  const sig = JSON.stringify(res);
  const changed = sig !== signature;
  signature = sig;
  loaded = true;
  if (changed) {
    const online = res.data.filter((w) => w.online).length;
    const busy = res.data.filter((w) => w.active && w.active.length).length;
    replace(
      queue,
      stat("Queued runs", String(res.queue_length ?? "–")),
      stat("Workers online", `${online} of ${res.data.length}`),
      stat("Busy", String(busy)),
    );
    replace(
      body,
      res.data.length
        ? h("div", { class: "workers" }, res.data.map(workerCard))
        : emptyState("No workers found", "Start one with `optiboard worker` (or `optiboard up`); queued runs wait until a worker picks them up."),
    );
  }
  return { changed, done: false };
}

function stat(label, value) {
  return h("div", { class: "stat" }, h("div", { class: "label" }, label), h("div", { class: "value" }, value));
}

tick()
  .catch((err) => replace(body, errorState(err, () => window.location.reload())))
  .finally(() => poll(tick, { min: 3000, max: 10000, onError: (err) => { if (!loaded) replace(body, errorState(err)); } }));
