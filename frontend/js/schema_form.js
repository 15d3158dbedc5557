// A form generated from a JSON schema (pydantic's RunSpec schema from GET /api/techniques):
// objects become fieldsets, enums selects, numbers bounded number inputs, booleans
// checkboxes, arrays of enums checkbox groups, discriminated unions an ordered list editor.
// A technique added on the server appears here with no front-end change.
// 422 errors map back to inputs by their `loc` path.

import { h, replace } from "./dom.js";

const ADVANCED = new Set(["pipeline", "export_options", "measurement", "kind", "parent_run_id", "external"]);
const HIDDEN = new Set(["kind", "parent_run_id", "external"]); // launched from a run's page instead

let uid = 0;
const nextId = (path) => `f-${path.replace(/[^a-zA-Z0-9]+/g, "-")}-${++uid}`;

export function humanize(key) {
  const s = String(key).replace(/_/g, " ");
  return s.charAt(0).toUpperCase() + s.slice(1);
}

const capitalize = (s) => s.charAt(0).toUpperCase() + s.slice(1);

export class SchemaForm {
  /**
   * @param {object} schema root JSON schema with $defs
   * @param {object} defaults a full default document (RunSpec().model_dump())
   * @param {{techniqueNames?: Object<string,string>, describeOption?: (path: string, value: any) => ?{label?: string, disabled?: boolean, title?: string}}} options
   *   techniqueNames: spelled-out names of the union tags ("qat" → "quantization-aware training");
   *   describeOption: how an enum option is shown (e.g. a dataset not on this server, disabled)
   */
  constructor(schema, defaults, options = {}) {
    this.options = options;
    this.schema = schema;
    this.defs = schema.$defs || schema.definitions || {};
    this.defaults = defaults || {};
    this.slots = new Map(); // path → {error: HTMLElement, input?: HTMLElement, container: HTMLElement}
    this.onChange = () => {};
    this.summary = h("div", { class: "banner banner-error", role: "alert", hidden: true });
    const root = this.node(schema, [], this.defaults, 0, "");
    this.root = root;
    this.element = h("div", { class: "schema-form" }, this.summary, root.el);
  }

  resolve(s) {
    if (!s) return {};
    if (s.$ref) {
      const name = s.$ref.split("/").pop();
      return { ...this.defs[name], ...Object.fromEntries(Object.entries(s).filter(([k]) => k !== "$ref")) };
    }
    return s;
  }

  /** {schema, nullable} with anyOf [X, null] unwrapped. */
  unwrap(s) {
    s = this.resolve(s);
    const alts = s.anyOf || (s.oneOf && !s.discriminator ? s.oneOf : null);
    if (alts) {
      const nonNull = alts.filter((a) => a.type !== "null");
      if (nonNull.length === 1 && nonNull.length < alts.length) {
        const inner = this.resolve(nonNull[0]);
        return {
          schema: {
            ...inner,
            title: s.title || inner.title,
            description: s.description || inner.description,
            default: s.default,
            "x-applies-when": s["x-applies-when"],
          },
          nullable: true,
        };
      }
    }
    return { schema: s, nullable: false };
  }

  /** A technique's name as users read it: "Quantization-aware training", not "Qat". */
  tagLabel(tag) {
    const names = this.options.techniqueNames || {};
    return names[tag] ? capitalize(names[tag]) : humanize(tag);
  }

  register(path, parts) {
    this.slots.set(path.join("."), parts);
  }

  errorSlot() {
    return h("p", { class: "field-error", "aria-live": "polite" });
  }

  /** Build the node for one schema at a path; returns {el, get(), compound}. */
  node(rawSchema, path, value, depth, key) {
    const { schema, nullable } = this.unwrap(rawSchema);
    // a referenced model's title is its class name (RunSpec, ExportOptions): name it by its field
    const className =
      /Spec$/.test(schema.title || "") || /^[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+$/.test(schema.title || "");
    const title = schema.title && !className ? schema.title : humanize(key || "");
    if (schema.const !== undefined) return { el: null, get: () => schema.const, compound: false };
    if (schema.type === "object" || schema.properties)
      return this.objectNode(schema, path, value, depth, key, nullable, title);
    if (schema.type === "array") return this.arrayNode(schema, path, value, key, title);
    return this.scalarNode(schema, path, value, nullable, title);
  }

  objectNode(schema, path, value, depth, key, nullable, title) {
    const props = schema.properties || {};
    const current = value && typeof value === "object" ? value : null;
    const children = [];
    const scalars = [];
    const compounds = [];
    for (const [k, sub] of Object.entries(props)) {
      const childValue = current ? current[k] : this.resolve(sub).default;
      const child = this.node(sub, [...path, k], childValue, depth + 1, k);
      children.push([k, child]);
      if (!child.el) continue;
      if (HIDDEN.has(k) && depth === 0) continue;
      (child.compound ? compounds : scalars).push(child.el);
    }
    const error = this.errorSlot();
    // the top level's own scalars (name, experiment, tags, notes) get a frame like the rest
    const own = scalars.length ? h("div", { class: "fields" }, scalars) : null;
    const body = h(
      "div",
      {},
      depth === 0 && own ? h("fieldset", {}, h("legend", {}, "Run"), own) : own,
      compounds,
      error,
    );
    // fields that matter only for some values of a sibling (x-applies-when, from the server's
    // schema: momentum for sgd/rmsprop, step_epochs for the step schedule, upload_id for
    // uploads) are hidden otherwise and left out of the spec, so the server's default applies
    const conditional = children
      .map(([k, child]) => [k, child, this.unwrap(props[k]).schema["x-applies-when"]])
      .filter(([, child, rule]) => rule && child.el);
    const applies = (rule) =>
      Object.entries(rule).every(([sibling, values]) => {
        const node = children.find(([k]) => k === sibling);
        return !node || values.includes(node[1].get());
      });
    const refresh = () => {
      for (const [, child, rule] of conditional) child.el.hidden = !applies(rule);
    };
    if (conditional.length) {
      body.addEventListener("change", refresh);
      refresh();
    }
    const get = () => {
      const out = {};
      for (const [k, child] of children) {
        const rule = conditional.find(([ck]) => ck === k);
        if (rule && !applies(rule[2])) continue;
        const v = child.get();
        if (v !== undefined) out[k] = v;
      }
      return out;
    };
    if (depth === 0) {
      this.register(path, { error, container: body });
      return { el: body, get, compound: true };
    }
    const legendText = title;
    let el;
    let enabled = null;
    if (nullable) {
      // an optional block (e.g. early stopping): off means null
      enabled = h("input", {
        type: "checkbox",
        checked: current !== null && current !== undefined,
        on: {
          change: () => {
            body.hidden = !enabled.checked;
            this.onChange();
          },
        },
      });
      body.hidden = !enabled.checked;
      el = h(
        "fieldset",
        { dataset: { path: path.join(".") } },
        h("legend", {}, h("label", {}, enabled, ` ${legendText}`)),
        schema.description ? h("p", { class: "hint muted" }, schema.description) : null,
        body,
      );
    } else if (ADVANCED.has(key)) {
      el = h(
        "details",
        { class: "advanced", dataset: { path: path.join(".") } },
        h("summary", {}, legendText),
        h("fieldset", {}, body),
      );
    } else {
      el = h(
        "fieldset",
        { dataset: { path: path.join(".") } },
        h("legend", {}, legendText),
        schema.description ? h("p", { class: "hint muted" }, schema.description) : null,
        body,
      );
    }
    this.register(path, { error, container: el });
    return { el, get: () => (enabled && !enabled.checked ? null : get()), compound: true };
  }

  arrayNode(schema, path, value, key, title) {
    const items = this.resolve(schema.items || {});
    const list = Array.isArray(value) ? value : Array.isArray(schema.default) ? schema.default : [];
    if (items.enum) return this.enumSetNode(items.enum, schema, path, list, title);
    if (items.discriminator || (items.oneOf && items.oneOf.every((o) => this.resolve(o).properties)))
      return this.unionListNode(items, schema, path, list, title);
    if (items.type === "string" || items.type === "number" || items.type === "integer") {
      const id = nextId(path.join("."));
      const input = h("input", {
        type: "text",
        id,
        value: list.join(", "),
        placeholder: "comma-separated",
        on: { input: () => this.onChange() },
      });
      const error = this.errorSlot();
      const el = h(
        "div",
        { class: "field", dataset: { path: path.join(".") } },
        h("label", { for: id }, title),
        input,
        error,
      );
      this.register(path, { error, input, container: el });
      const get = () => {
        const parts = input.value
          .split(",")
          .map((s) => s.trim())
          .filter(Boolean);
        return items.type === "string" ? parts : parts.map(Number);
      };
      return { el, get, compound: false };
    }
    return this.jsonNode(schema, path, list, title);
  }

  enumSetNode(options, schema, path, list, title) {
    const error = this.errorSlot();
    const boxes = options.map((opt) =>
      h("input", { type: "checkbox", value: opt, checked: list.includes(opt), on: { change: () => this.onChange() } }),
    );
    const el = h(
      "fieldset",
      { dataset: { path: path.join(".") } },
      h("legend", {}, title),
      h(
        "div",
        { class: "checks" },
        boxes.map((b, i) => h("label", {}, b, options[i])),
      ),
      error,
    );
    this.register(path, { error, input: boxes[0], container: el });
    return { el, get: () => boxes.filter((b) => b.checked).map((b) => b.value), compound: true };
  }

  unionListNode(items, schema, path, list, title) {
    const variants = (items.oneOf || items.anyOf || []).map((o) => this.resolve(o));
    const tagKey = (items.discriminator && items.discriminator.propertyName) || "name";
    const byTag = new Map(variants.map((v) => [v.properties[tagKey].const ?? v.properties[tagKey].default, v]));
    const error = this.errorSlot();
    const host = h("div", { class: "stack" });
    const entries = []; // {tag, node, el}
    const picker = h(
      "select",
      { "aria-label": `Add to ${title}` },
      h("option", { value: "" }, `Add ${title.toLowerCase().replace(/s$/, "")}…`),
      [...byTag.keys()].map((t) => h("option", { value: t }, this.tagLabel(t))),
    );
    const max = schema.maxItems ?? Infinity;
    const redraw = () => {
      // re-key item paths so 422 locs (techniques.1.epochs) land on the right item
      const snapshot = entries.map((e) => ({ tag: e.tag, value: e.node.get() }));
      for (const k of [...this.slots.keys()]) if (k.startsWith(`${path.join(".")}.`)) this.slots.delete(k);
      entries.length = 0;
      for (const s of snapshot) entries.push(this.unionItem(byTag, tagKey, path, entries.length, s.tag, s.value));
      replace(
        host,
        entries.length ? null : h("p", { class: "muted" }, "None: plain training. Techniques run in this order."),
        entries.map((e, i) =>
          h(
            "fieldset",
            { class: "tech-item", dataset: { path: [...path, i].join("."), technique: e.tag } },
            h(
              "div",
              { class: "tech-head" },
              h("strong", {}, `${i + 1}. ${this.tagLabel(e.tag)}`),
              h(
                "span",
                { class: "actions" },
                h(
                  "button",
                  {
                    type: "button",
                    class: "btn btn-sm",
                    disabled: i === 0,
                    "aria-label": `Move ${e.tag} up`,
                    on: { click: () => move(i, -1) },
                  },
                  "↑",
                ),
                h(
                  "button",
                  {
                    type: "button",
                    class: "btn btn-sm",
                    disabled: i === entries.length - 1,
                    "aria-label": `Move ${e.tag} down`,
                    on: { click: () => move(i, 1) },
                  },
                  "↓",
                ),
                h(
                  "button",
                  {
                    type: "button",
                    class: "btn btn-sm btn-danger",
                    "aria-label": `Remove ${e.tag}`,
                    on: { click: () => removeAt(i) },
                  },
                  "Remove",
                ),
              ),
            ),
            e.el,
          ),
        ),
      );
      picker.disabled = entries.length >= max;
      this.onChange();
    };
    const move = (i, d) => {
      const [e] = entries.splice(i, 1);
      entries.splice(i + d, 0, e);
      redraw();
    };
    const removeAt = (i) => {
      entries.splice(i, 1);
      redraw();
    };
    picker.addEventListener("change", () => {
      if (!picker.value) return;
      entries.push(this.unionItem(byTag, tagKey, path, entries.length, picker.value, null));
      picker.value = "";
      redraw();
    });
    for (const item of list) entries.push(this.unionItem(byTag, tagKey, path, entries.length, item[tagKey], item));
    redraw();
    const el = h(
      "fieldset",
      { dataset: { path: path.join(".") } },
      h("legend", {}, title),
      host,
      h("div", { class: "toolbar" }, picker),
      error,
    );
    this.register(path, { error, input: picker, container: el });
    return { el, get: () => entries.map((e) => e.node.get()), compound: true };
  }

  unionItem(byTag, tagKey, path, index, tag, value) {
    const schema = byTag.get(tag);
    const node = this.node(schema, [...path, index], value || null, 2, tag);
    // the object node renders as a fieldset; use only its body inside the item frame
    const inner = node.el.querySelector(":scope > div") || node.el;
    return { tag, node, el: inner };
  }

  jsonNode(schema, path, value, title) {
    const id = nextId(path.join("."));
    const input = h("textarea", { id, rows: "3", class: "mono", on: { input: () => this.onChange() } });
    input.value = JSON.stringify(value ?? schema.default ?? null);
    const error = this.errorSlot();
    const el = h("div", { class: "field wide" }, h("label", { for: id }, `${title} (JSON)`), input, error);
    this.register(path, { error, input, container: el });
    return {
      el,
      get: () => {
        try {
          return JSON.parse(input.value);
        } catch {
          return input.value; // the server names the field in its 422
        }
      },
      compound: false,
    };
  }

  scalarNode(schema, path, value, nullable, title) {
    const id = nextId(path.join("."));
    const error = this.errorSlot();
    const v = value === undefined ? schema.default : value;
    const hintParts = [];
    if (schema.description) hintParts.push(schema.description);
    let input;
    let get;
    if (schema.enum) {
      input = h(
        "select",
        { id, on: { change: () => this.onChange() } },
        nullable ? h("option", { value: "" }, "none") : null,
        schema.enum.map((opt) => {
          const d = (this.options.describeOption && this.options.describeOption(path.join("."), opt)) || {};
          return h(
            "option",
            { value: String(opt), selected: opt === v, disabled: Boolean(d.disabled) && opt !== v, title: d.title },
            d.label || String(opt),
          );
        }),
      );
      get = () => (input.value === "" && nullable ? null : schema.enum.find((o) => String(o) === input.value));
    } else if (schema.type === "boolean") {
      input = h("input", { type: "checkbox", id, checked: Boolean(v), on: { change: () => this.onChange() } });
      get = () => input.checked;
      const hint = schema.description ? h("span", { class: "hint" }, schema.description) : null;
      const el = h(
        "div",
        { class: "field", dataset: { path: path.join(".") } },
        h("div", { class: "check" }, input, h("label", { for: id }, title)),
        hint,
        error,
      );
      this.register(path, { error, input, container: el });
      return { el, get, compound: false, schema, path };
    } else if (schema.type === "integer" || schema.type === "number") {
      const min = schema.minimum ?? schema.exclusiveMinimum;
      const max = schema.maximum ?? schema.exclusiveMaximum;
      input = h("input", {
        type: "number",
        id,
        step: schema.type === "integer" ? "1" : "any",
        min: min !== undefined ? String(min) : undefined,
        max: max !== undefined && max < 1e15 ? String(max) : undefined,
        placeholder: nullable ? "none" : undefined,
        value: v === null || v === undefined ? "" : String(v),
        on: { input: () => this.onChange() },
      });
      if (min !== undefined && max !== undefined && max < 1e15)
        hintParts.push(`${schema.exclusiveMinimum !== undefined ? ">" : ""}${min} – ${max}`);
      get = () => {
        if (input.value.trim() === "") return nullable ? null : undefined;
        const n = Number(input.value);
        return Number.isFinite(n) ? n : input.value;
      };
    } else {
      const long = (schema.maxLength || 0) > 1000;
      input = long
        ? h("textarea", { id, rows: "2", on: { input: () => this.onChange() } })
        : h("input", {
            type: "text",
            id,
            maxlength: schema.maxLength ? String(schema.maxLength) : undefined,
            on: { input: () => this.onChange() },
          });
      input.value = v === null || v === undefined ? "" : String(v);
      get = () => (input.value === "" && nullable ? null : input.value);
    }
    const hint = hintParts.length ? h("span", { class: "hint" }, hintParts.join(" · ")) : null;
    const el = h(
      "div",
      { class: ["field", input.tagName === "TEXTAREA" ? "wide" : ""], dataset: { path: path.join(".") } },
      h("label", { for: id }, title),
      input,
      hint,
      error,
    );
    this.register(path, { error, input, container: el });
    return { el, get, compound: false, schema, path };
  }

  value() {
    return this.root.get();
  }

  /** Scalar leaves a sweep can vary: [{path, label, schema}] (array items excluded). */
  sweepablePaths() {
    const out = [];
    const value = this.value();
    const at = (path) => path.reduce((o, k) => (o && typeof o === "object" ? o[k] : undefined), value);
    // a field that applies only for some values of a sibling (momentum: sgd and rmsprop) is not
    // offered while the sibling rules it out: the server would refuse the grid
    const applies = (sub, path) => {
      const rule = this.unwrap(sub).schema["x-applies-when"];
      if (!rule) return true;
      const parent = at(path) || {};
      return Object.entries(rule).every(([sibling, allowed]) => allowed.includes(parent[sibling]));
    };
    const walk = (s, path) => {
      const { schema } = this.unwrap(s);
      if (schema.properties) {
        for (const [k, sub] of Object.entries(schema.properties)) {
          if (HIDDEN.has(k) && path.length === 0) continue;
          if (!applies(sub, path)) continue;
          walk(sub, [...path, k]);
        }
      } else if (schema.enum || ["integer", "number", "boolean"].includes(schema.type)) {
        out.push({ path: path.join("."), label: path.map(humanize).join(" › "), schema });
      } else if (schema.type === "array" && this.resolve(schema.items || {}).enum) {
        // a set of options (exports): each grid value is a set, written a+b
        out.push({
          path: path.join("."),
          label: `${path.map(humanize).join(" › ")} (sets)`,
          schema: { ...schema, items: this.resolve(schema.items) },
        });
      }
    };
    walk(this.schema, []);
    // parameters of the techniques in the chain right now (grid paths may index lists)
    const root = this.resolve(this.schema);
    for (const [key, prop] of Object.entries(root.properties || {})) {
      const items = prop.type === "array" ? this.resolve(prop.items || {}) : null;
      if (!items || !(items.discriminator || items.oneOf)) continue;
      const tagKey = (items.discriminator && items.discriminator.propertyName) || "name";
      const current = this.value()[key] || [];
      current.forEach((item, i) => {
        const variant = (items.oneOf || [])
          .map((o) => this.resolve(o))
          .find((v) => v.properties[tagKey]?.const === item[tagKey]);
        if (!variant) return;
        for (const [k, sub] of Object.entries(variant.properties)) {
          if (k === tagKey) continue;
          const { schema } = this.unwrap(sub);
          if (schema.enum || ["integer", "number", "boolean"].includes(schema.type)) {
            out.push({
              path: `${key}.${i}.${k}`,
              label: `${humanize(key)} › ${i + 1}. ${this.tagLabel(item[tagKey])} › ${humanize(k)}`,
              schema,
            });
          }
        }
      });
    }
    return out;
  }

  clearErrors() {
    for (const slot of this.slots.values()) {
      slot.error.textContent = "";
      if (slot.input) slot.input.removeAttribute("aria-invalid");
    }
    this.summary.hidden = true;
    replace(this.summary);
  }

  /**
   * Show FastAPI 422 details next to their fields.
   * @param {Array<{loc: Array, msg: string}>} errors
   * @param {number} skip leading loc parts to drop (["body"] → 1, ["body","base"] → 2)
   * @returns {Array} errors that matched no field
   */
  showErrors(errors, skip = 1) {
    this.clearErrors();
    const unmatched = [];
    const items = [];
    let first = null;
    for (const err of errors) {
      const loc = (err.loc || []).slice(skip);
      // pydantic puts the union tag in the loc: techniques.0.pruning.epochs → techniques.0.epochs
      const clean = loc.filter(
        (part, i) =>
          !(
            i > 0 &&
            typeof loc[i - 1] === "number" &&
            typeof part === "string" &&
            this.slots.has([...loc.slice(0, i)].join(".")) &&
            !this.slots.has([...loc.slice(0, i + 1)].join("."))
          ),
      );
      const message = err.msg.replace(/^Value error, /, "");
      // a whole-spec check often names its field first: "training.epochs must be at least 1…"
      const named = clean.length ? null : message.match(/^([A-Za-z_]\w*(?:\.\w+)+)\b/);
      if (named && this.slots.has(named[1])) clean.push(...named[1].split("."));
      let slot = null;
      for (let n = clean.length; n >= 0 && !slot; n -= 1) slot = this.slots.get(clean.slice(0, n).join("."));
      const where = clean.join(".") || "spec";
      items.push(h("li", {}, h("strong", {}, `${where}: `), message));
      if (!slot) {
        unmatched.push(err);
        continue;
      }
      slot.error.textContent = slot.error.textContent ? `${slot.error.textContent} ${message}` : message;
      if (slot.input) slot.input.setAttribute("aria-invalid", "true");
      const det = slot.container.closest("details");
      if (det) det.open = true;
      if (!first) first = slot.input || slot.container;
    }
    replace(
      this.summary,
      h("strong", {}, `The server rejected ${errors.length === 1 ? "one field" : `${errors.length} fields`}:`),
      h("ul", {}, items),
    );
    this.summary.hidden = false;
    if (first && first.focus) first.focus();
    return unmatched;
  }
}
