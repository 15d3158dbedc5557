// Sign-in page: paste an API token; the server exchanges it for an HttpOnly cookie.
// Pages that get a 401 send the user here with ?next=<where they were>.

import { h, replace } from "../dom.js";
import { mountLayout, pageHeader } from "../layout.js";

const main = mountLayout("", "Sign in");
const params = new URLSearchParams(window.location.search);
const next = params.get("next") || "/";
// a refused sign-in link lands here with its token: say so, and keep the secret out of history
const refused = params.has("token");
if (refused) {
  params.delete("token");
  history.replaceState(null, "", `/login${params.toString() ? `?${params}` : ""}`);
}

const input = h("input", {
  type: "password",
  id: "token",
  name: "token",
  autocomplete: "current-password",
  placeholder: "ob_…",
  required: true,
  spellcheck: "false",
  "aria-describedby": "token-help",
});
const error = h(
  "p",
  { class: "field-error", id: "signin-error", role: "alert" },
  refused ? "That sign-in link's token was refused: it is not valid or has been revoked." : "",
);
const button = h("button", { type: "submit", class: "btn btn-primary", id: "signin-submit" }, "Sign in");

async function submit(e) {
  e.preventDefault();
  const token = input.value.trim();
  if (!token) {
    error.textContent = "Paste a token first.";
    return;
  }
  button.disabled = true;
  error.textContent = "";
  try {
    const res = await fetch("/login", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Requested-With": "optiboard" },
      body: JSON.stringify({ token }),
    });
    if (res.status === 204) {
      // only a path on this site (the server applies the same rule to the sign-in link)
      window.location.assign(next.startsWith("/") && !next.startsWith("//") ? next : "/");
      return;
    }
    error.textContent =
      res.status === 401
        ? "This token was refused: it is not valid or has been revoked."
        : `The server answered ${res.status}.`;
  } catch {
    error.textContent = "Cannot reach the optiboard server. Is it running?";
  } finally {
    button.disabled = false;
  }
  input.focus();
}

const code = (text) => h("code", {}, text);
replace(
  main,
  h(
    "section",
    { class: "card signin" },
    pageHeader("Sign in to optiboard", {
      subtitle: "The dashboard needs an API token. It is kept in an HttpOnly cookie on this browser for 30 days.",
    }),
    h(
      "form",
      { id: "signin-form", class: "stack", on: { submit } },
      h("div", { class: "field" }, h("label", { for: "token" }, "API token"), input),
      error,
      h("p", {}, button),
    ),
    h(
      "div",
      { id: "token-help", class: "muted stack" },
      h("p", {}, h("strong", {}, "Where to find a token")),
      h(
        "ul",
        {},
        h(
          "li",
          {},
          code("optiboard up"),
          " (and ",
          code("make run"),
          ") prints a sign-in link ",
          code("http://…/login?token=ob_…"),
          " when it starts: open it, or paste the part after ",
          code("token="),
          ".",
        ),
        h(
          "li",
          {},
          "The same token is in the file ",
          code("token"),
          " of the server's data directory: ",
          code("cat .optiboard/token"),
          " (or ",
          code("$OPTIBOARD_DATA_DIR/token"),
          ").",
        ),
        h(
          "li",
          {},
          "Make another one on the server: ",
          code("optiboard token create NAME"),
          " (shown once). Your administrator can give you one for a shared server.",
        ),
      ),
    ),
  ),
);
input.focus();
