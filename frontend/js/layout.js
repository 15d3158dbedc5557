// The one layout: top navigation, page header, and the loading / empty / error states that
// every page uses, so the whole dashboard looks and behaves the same.

import { h, replace } from "./dom.js";

const NAV = [
  { key: "runs", href: "/", label: "Runs" },
  { key: "launch", href: "/launch", label: "Launch" },
  { key: "compare", href: "/compare", label: "Compare" },
  { key: "studies", href: "/studies", label: "Studies" },
  { key: "models", href: "/models", label: "Models" },
  { key: "workers", href: "/workers", label: "Workers" },
];

/** Fills <header id="topbar"> and returns <main id="main">. */
export function mountLayout(active, title) {
  document.title = `${title} · optiboard`;
  const top = document.getElementById("topbar");
  replace(
    top,
    h("a", { class: "skip-link", href: "#main" }, "Skip to content"),
    h(
      "nav",
      { class: "topnav", "aria-label": "Main" },
      h("a", { class: "brand", href: "/" }, h("span", { class: "brand-mark", "aria-hidden": "true" }), "optiboard"),
      h(
        "ul",
        {},
        NAV.map((item) =>
          h(
            "li",
            {},
            h("a", { href: item.href, "aria-current": item.key === active ? "page" : undefined }, item.label),
          ),
        ),
      ),
      h("a", { class: "nav-docs", href: "/docs" }, "API docs"),
    ),
  );
  return document.getElementById("main");
}

export function pageHeader(title, { subtitle, actions = [] } = {}) {
  return h(
    "div",
    { class: "page-header" },
    h("div", {}, h("h1", {}, title), subtitle ? h("p", { class: "subtitle" }, subtitle) : null),
    h("div", { class: "actions" }, actions),
  );
}

export function loadingState(message = "Loading…") {
  return h(
    "div",
    { class: "state state-loading", role: "status", "aria-live": "polite" },
    h("span", { class: "spinner", "aria-hidden": "true" }),
    message,
  );
}

export function emptyState(title, body, action) {
  return h(
    "div",
    { class: "state state-empty" },
    h("p", { class: "state-title" }, title),
    body ? h("p", {}, body) : null,
    action || null,
  );
}

export function errorState(error, retry) {
  return h(
    "div",
    { class: "state state-error", role: "alert" },
    h("p", { class: "state-title" }, error && error.status === 404 ? "Not found" : "Something went wrong"),
    h("p", {}, error ? error.message : "Unknown error"),
    retry ? h("button", { type: "button", class: "btn", on: { click: retry } }, "Try again") : null,
  );
}

/** A transient message in the corner (saved, cancelled, failed to …). */
export function toast(message, kind = "info") {
  let host = document.getElementById("toasts");
  if (!host) {
    host = h("div", { id: "toasts", class: "toasts", role: "status", "aria-live": "polite" });
    document.body.appendChild(host);
  }
  const el = h("div", { class: `toast toast-${kind}` }, message);
  host.appendChild(el);
  setTimeout(() => el.remove(), kind === "error" ? 8000 : 4000);
}

export function statusBadge(status) {
  return h("span", { class: `badge status-${status}` }, status);
}

export function progressBar(fraction, label) {
  const pct = Math.max(0, Math.min(1, Number(fraction) || 0)) * 100;
  const fill = h("div", { class: "progress-fill" });
  fill.style.width = `${pct.toFixed(1)}%`; // CSSOM, not a style attribute: fine under any CSP
  return h(
    "div",
    {
      class: "progress",
      role: "progressbar",
      "aria-valuemin": "0",
      "aria-valuemax": "100",
      "aria-valuenow": pct.toFixed(0),
      "aria-label": label || "progress",
    },
    fill,
  );
}

export function card(title, ...children) {
  return h("section", { class: "card" }, title ? h("h2", { class: "card-title" }, title) : null, children);
}

/** A table from column definitions: {label, cell(row) -> Node|string, num?: bool}. */
export function table(columns, rows, { rowClass, caption, id, cls } = {}) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: cls ? `data ${cls}` : "data", id },
      caption ? h("caption", { class: "sr-only" }, caption) : null,
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          columns.map((c) => h("th", { class: c.num ? "num" : undefined, scope: "col", title: c.title }, c.label)),
        ),
      ),
      h(
        "tbody",
        {},
        rows.map((row) =>
          h(
            "tr",
            { class: rowClass ? rowClass(row) : undefined },
            columns.map((c) =>
              h("td", { class: [c.num ? "num" : "", c.cls || ""].join(" ").trim() || undefined }, c.cell(row)),
            ),
          ),
        ),
      ),
    ),
  );
}
