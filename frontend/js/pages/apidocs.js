// Swagger UI on the API's own OpenAPI document. A file of its own (not an inline script), so
// the page runs under the dashboard's strict CSP. "Try it out" requests go to this origin and
// carry the dashboard's session cookie.
/* global SwaggerUIBundle */
SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  docExpansion: "list",
  defaultModelsExpandDepth: 0,
  showExtensions: true,
});
