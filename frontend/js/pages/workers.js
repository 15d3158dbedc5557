// Workers page: who is online, on what hardware, running which runs, and the queue length.

import * as api from "../api.js";
import { h, replace } from "../dom.js";
import * as fmt from "../format.js";
import { emptyState, errorState, loadingState, mountLayout, pageHeader } from "../layout.js";
import { poll } from "../poll.js";

const main = mountLayout("workers", "Workers");
const queue = h("div", { class: "stats" });
const body = h("div", {}, loadingState("Asking the workers…"));
replace(
  main,
  pageHeader("Workers", { subtitle: "Celery workers consuming the optiboard queues. Refreshes every few seconds." }),
  queue,
  body,
);

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
  if (value === null || value === undefined) return "–";
  if (Array.isArray(value))
    return value.length ? value.map((x) => (typeof x === "object" ? JSON.stringify(x) : String(x))).join(", ") : "none";
  if (typeof value === "number" && /bytes|memory/.test(key)) return fmt.bytes(value);
  if (value && typeof value === "object") return JSON.stringify(value);
  return String(value);
}

// The API lists online workers as {name, queues, concurrency, pid, active: [{run_id, started_at}],
// hardware}; older shapes ({hostname, online, active: [ids]}) are read too.
function normalize(w) {
  const active = (w.active || []).map((a) => (typeof a === "object" && a !== null ? a : { run_id: a }));
  return {
    name: w.name || w.hostname || "worker",
    online: w.online ?? true,
    active,
    queues: w.queues || [],
    concurrency: w.concurrency,
    pid: w.pid,
    hardware: w.hardware || {},
  };
}

// (no "running for" here: Celery's time_start is the worker's clock, not ours)
function activeJob(job, i) {
  return [i ? ", " : "", job.run_id ? h("a", { href: `/runs/${job.run_id}` }, `run #${job.run_id}`) : "a job"];
}

function workerCard(raw) {
  const w = normalize(raw);
  const facts = [
    w.concurrency ? `${w.concurrency} job slot${w.concurrency === 1 ? "" : "s"}` : null,
    w.pid ? `pid ${w.pid}` : null,
  ]
    .filter(Boolean)
    .join(" · ");
  return h(
    "section",
    { class: "card", dataset: { worker: w.name } },
    h(
      "h2",
      { class: "card-title" },
      h("span", { class: `dot ${w.online ? "on" : ""}`, "aria-hidden": "true" }),
      w.name,
      h("span", { class: "muted" }, w.online ? " · online" : " · offline"),
    ),
    facts ? h("p", { class: "muted" }, facts) : null,
    h(
      "p",
      {},
      h("strong", {}, "Running: "),
      w.active.length ? w.active.map(activeJob) : h("span", { class: "muted" }, "idle"),
    ),
    hardwareList(w.hardware),
    w.queues.length ? h("p", { class: "muted" }, `Queues: ${w.queues.join(", ")}`) : null,
  );
}

function queued(res) {
  if (typeof res.queue_length === "number") return res.queue_length;
  return Object.values(res.queues || {}).reduce((a, b) => a + (Number(b) || 0), 0);
}

async function tick() {
  const res = await api.listWorkers();
  const sig = JSON.stringify(res);
  const changed = sig !== signature;
  signature = sig;
  loaded = true;
  if (changed) {
    const workers = res.data.map(normalize);
    const online = workers.filter((w) => w.online).length;
    const busy = workers.filter((w) => w.active.length).length;
    const perQueue = Object.entries(res.queues || {})
      .map(([q, n]) => `${q}: ${n}`)
      .join(" · ");
    replace(
      queue,
      stat("Jobs waiting in the broker", String(queued(res)), perQueue),
      stat("Workers online", String(online)),
      stat("Busy", `${busy} of ${online}`),
    );
    replace(
      body,
      res.data.length
        ? h("div", { class: "workers" }, res.data.map(workerCard))
        : emptyState(
            "No workers found",
            "Start one with `optiboard worker` (or `optiboard up`); queued runs wait until a worker picks them up.",
          ),
    );
  }
  return { changed, done: false };
}

function stat(label, value, note) {
  return h(
    "div",
    { class: "stat" },
    h("div", { class: "label" }, label),
    h("div", { class: "value" }, value),
    note ? h("div", { class: "muted" }, note) : null,
  );
}

tick()
  .catch((err) =>
    replace(
      body,
      errorState(err, () => window.location.reload()),
    ),
  )
  .finally(() =>
    poll(tick, {
      min: 3000,
      max: 10000,
      onError: (err) => {
        if (!loaded) replace(body, errorState(err));
      },
    }),
  );
