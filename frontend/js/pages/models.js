// Models page: upload a model (.keras, SavedModel .zip, .tflite) and read its preflight: per
// layer, whether pruning, QAT, clustering and int8 conversion support it, and the fix.

import * as api from "../api.js";
import { h, replace } from "../dom.js";
import * as fmt from "../format.js";
import { emptyState, errorState, loadingState, mountLayout, pageHeader, toast } from "../layout.js";

const TECHNIQUES = [
  ["prune", "Pruning"],
  ["qat", "QAT"],
  ["cluster", "Clustering"],
  ["int8", "int8 TFLite"],
];

const main = mountLayout("models", "Models");
const uploadBox = h("section", { class: "card" });
const list = h("div", {}, loadingState("Loading models…"));
const detail = h("div", { id: "model-detail" });
replace(
  main,
  pageHeader("Models", {
    subtitle:
      "Your own models: scanned, loaded in a sandbox with safe mode, and checked layer by layer before anything runs.",
  }),
  uploadBox,
  list,
  detail,
);

function support(verdict) {
  if (!verdict) return "–";
  return [
    h("span", { class: `badge support-${verdict.status}` }, verdict.status),
    verdict.note ? h("div", { class: "preflight-note" }, verdict.note) : null,
  ];
}

function shapes(items) {
  return (items || []).map((i) => `${JSON.stringify(i.shape)} ${i.dtype}${i.kind ? ` (${i.kind})` : ""}`).join(", ");
}

function showModel(m) {
  const p = m.preflight || {};
  const facts = [
    ["format", `${m.format}${m.keras_flavour ? ` (${m.keras_flavour})` : ""}`],
    ["kind", p.kind || "–"],
    ["inputs", shapes(p.inputs) || "–"],
    ["outputs", shapes(p.outputs) || "–"],
    ["parameters", p.params === null || p.params === undefined ? "–" : p.params.toLocaleString()],
    ["size", fmt.bytes(m.size_bytes)],
    ["sha256", m.sha256],
    ["checked in", p.seconds === undefined ? "–" : `${p.seconds} s`],
  ];
  const copy = p.tf_keras_copy;
  if (copy)
    facts.push([
      "tf-keras copy",
      copy.status === "yes"
        ? `made at upload; the techniques run on it (outputs equal within ${Number(copy.max_abs_diff).toExponential(1)})`
        : `none: ${copy.reason} (techniques and exports cannot run)`,
    ]);
  if (m.format === "tflite")
    facts.push(["runs", "measured as it is (accuracy, size, latency): no training or exports"]);
  if (m.format === "saved_model") facts.push(["runs", "converted to TFLite and measured; exports, no training"]);
  const nested = (p.nested_models || []).map((n) => `${n.path} (${n.class}, ${n.layers} layers)`);
  replace(
    detail,
    h(
      "section",
      { class: "card", dataset: { model: String(m.id) } },
      h("h2", { class: "card-title" }, m.name),
      h(
        "dl",
        { class: "kv" },
        facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
      ),
      nested.length ? h("p", {}, h("strong", {}, "Nested models (flattened below): "), nested.join(", ")) : null,
      h(
        "dl",
        { class: "kv" },
        TECHNIQUES.map(([key, label]) => {
          const t = p.techniques?.[key];
          return [h("dt", {}, label), h("dd", {}, t ? [support({ status: t.status }), " ", t.reason || ""] : "–")];
        }),
      ),
      (p.layers || []).length
        ? h(
            "div",
            { class: "table-wrap" },
            h(
              "table",
              { class: "data", id: "preflight-table" },
              h(
                "thead",
                {},
                h(
                  "tr",
                  {},
                  h("th", {}, "Layer"),
                  h("th", {}, "Class"),
                  h("th", { class: "num" }, "Params"),
                  TECHNIQUES.map(([, label]) => h("th", {}, label)),
                ),
              ),
              h(
                "tbody",
                {},
                p.layers.map((row) =>
                  h(
                    "tr",
                    {},
                    h("td", {}, row.path),
                    h("td", {}, row.class),
                    h("td", { class: "num" }, row.params.toLocaleString()),
                    TECHNIQUES.map(([key]) => h("td", {}, support(row[key]))),
                  ),
                ),
              ),
            ),
          )
        : null,
    ),
  );
}

function modelsTable(models) {
  if (!models.length)
    return emptyState("No models yet", "Upload a .keras file (Keras 3 or tf-keras), a zipped SavedModel or a .tflite.");
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "data", id: "models-table" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["#", "Name", "Format", "Kind", "Input", "Params", "Uploaded", ""].map((t) => h("th", {}, t)),
        ),
      ),
      h(
        "tbody",
        {},
        models.map((m) =>
          h(
            "tr",
            {},
            h("td", {}, String(m.id)),
            h("td", {}, h("a", { href: `#${m.id}`, on: { click: () => showModel(m) } }, m.name)),
            h("td", {}, `${m.format}${m.keras_flavour ? ` (${m.keras_flavour})` : ""}`),
            h("td", {}, m.preflight.kind || "–"),
            h("td", {}, shapes(m.preflight.inputs)),
            h("td", { class: "num" }, m.preflight.params == null ? "–" : m.preflight.params.toLocaleString()),
            h("td", {}, new Date(m.created_at).toLocaleString()),
            h(
              "td",
              { class: "actions" },
              h(
                "a",
                { class: "btn", href: `/launch?model=${m.id}`, title: "Launch a run that starts from this model" },
                "Optimize…",
              ),
              " ",
              m.format === "keras"
                ? h(
                    "a",
                    {
                      class: "btn",
                      href: `/studies?model=${m.id}`,
                      title: "Start a study (a search over recipes) with this model as its baseline",
                    },
                    "Study…",
                  )
                : "",
              m.format === "keras" ? " " : "",
              h(
                "button",
                {
                  type: "button",
                  class: "btn",
                  on: {
                    click: async () => {
                      await api.deleteModel(m.id);
                      toast(`Deleted ${m.name}`);
                      replace(detail);
                      refresh();
                    },
                  },
                },
                "Delete",
              ),
            ),
          ),
        ),
      ),
    ),
  );
}

async function refresh() {
  try {
    const page = await api.listModels();
    replace(list, modelsTable(page.data));
    const wanted = Number(window.location.hash.slice(1));
    const chosen = page.data.find((m) => m.id === wanted);
    if (chosen) showModel(chosen);
  } catch (err) {
    replace(list, errorState(err, refresh));
  }
}

function uploadWidget() {
  const input = h("input", { type: "file", id: "model-file", accept: ".keras,.zip,.tflite,.h5" });
  const message = h("div", { role: "status", "aria-live": "polite" });
  const button = h("button", { type: "submit", class: "btn primary" }, "Upload and check");
  const form = h(
    "form",
    {
      on: {
        submit: async (event) => {
          event.preventDefault();
          const file = input.files?.[0];
          if (!file) return;
          button.disabled = true;
          replace(message, loadingState("Scanning, loading in a sandbox and checking each layer…"));
          try {
            const model = await api.uploadModel(file);
            replace(message, h("p", {}, `Accepted: ${model.name}; its preflight is below.`));
            window.location.hash = String(model.id);
            showModel(model);
            detail.scrollIntoView({ block: "start" }); // the layer table is what the user came for
            refresh();
          } catch (err) {
            replace(
              message,
              h(
                "div",
                { class: "state state-error", role: "alert" },
                h("p", { class: "state-title" }, `Refused (${err.status})`),
                err.fieldErrors.length
                  ? h(
                      "ul",
                      {},
                      err.fieldErrors.map((e) =>
                        h("li", {}, `${e.loc.filter((p) => p !== "body").join(" › ")}: ${e.msg}`),
                      ),
                    )
                  : h("p", {}, err.message),
              ),
            );
          } finally {
            button.disabled = false;
          }
        },
      },
    },
    h("label", { for: "model-file" }, "Model file "),
    input,
    " ",
    button,
    message,
  );
  return [h("h2", { class: "card-title" }, "Upload a model"), form];
}

replace(uploadBox, uploadWidget());
refresh();
