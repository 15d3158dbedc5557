// ReDoc on the API's own OpenAPI document (a module, not an inline script: the page runs
// under the dashboard's strict CSP).
/* global Redoc */
Redoc.init("/openapi.json", { expandResponses: "200,201" }, document.getElementById("redoc"));
