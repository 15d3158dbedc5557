// The one API client: one function per endpoint, one error shape (ApiError).
// Cookie auth (set by /login?token=...) travels with credentials: "same-origin"; writes add
// X-Requested-With so the server's same-origin check accepts them.

export class ApiError extends Error {
  /**
   * @param {number} status HTTP status, 0 when the server could not be reached
   * @param {string} message one human sentence
   * @param {Array<{loc: Array<string|number>, msg: string, type?: string}>} fieldErrors 422 details
   */
  constructor(status, message, fieldErrors = []) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.fieldErrors = fieldErrors;
  }
}

function describe(status, detail) {
  if (status === 401) return "You are not signed in: opening the sign-in page…";
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((e) => `${(e.loc || []).filter((p) => p !== "body").join(".") || "request"}: ${e.msg}`)
      .join("; ");
  }
  if (detail && typeof detail === "object") return JSON.stringify(detail);
  return `The server answered ${status}.`;
}

async function request(method, path, { query, body, signal } = {}) {
  const url = new URL(path, window.location.origin);
  if (query) {
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, String(v));
    }
  }
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-Requested-With"] = "optiboard";
  const init = { method, headers, credentials: "same-origin", signal };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    if (err && err.name === "AbortError") throw err;
    throw new ApiError(0, "Cannot reach the optiboard server. Is it running?");
  }
  if (response.status === 204) return null;
  let payload = null;
  const type = response.headers.get("content-type") || "";
  if (type.includes("application/json")) {
    try {
      payload = await response.json();
    } catch {
      payload = null;
    }
  }
  if (response.status === 401 && !window.location.pathname.startsWith("/login")) {
    // not signed in (no cookie, or its token was revoked): the sign-in page, then back here
    const here = window.location.pathname + window.location.search;
    window.location.assign(`/login?next=${encodeURIComponent(here)}`);
  }
  if (!response.ok) {
    const detail = payload && "detail" in payload ? payload.detail : null;
    throw new ApiError(response.status, describe(response.status, detail), Array.isArray(detail) ? detail : []);
  }
  return payload;
}

const get = (path, query, opts) => request("GET", path, { query, ...opts });
const post = (path, body, opts) => request("POST", path, { body, ...opts });

// Studies (issue 20)
export const listStudies = (opts) => get("/api/studies", undefined, opts);
export const getStudy = (id, includeInfeasible, opts) =>
  get(`/api/studies/${id}`, { include_infeasible: includeInfeasible ? "true" : undefined }, opts);
export const createStudy = (spec) => post("/api/studies", spec);
export const steerStudy = (id, action, body) => post(`/api/studies/${id}/${action}`, body);

// Runs
export const getVocabulary = (opts) => get("/api/vocabulary", undefined, opts);
export const listRuns = (filters = {}, opts) => get("/api/runs", filters, opts);
export const getParcoords = (filters = {}, opts) => get("/api/parcoords", filters, opts);
export const createRun = (spec) => post("/api/runs", spec);
export const getRun = (id, opts) => get(`/api/runs/${encodeURIComponent(id)}`, undefined, opts);
export const updateRun = (id, patch) => request("PATCH", `/api/runs/${encodeURIComponent(id)}`, { body: patch });
export const deleteRun = (id) => request("DELETE", `/api/runs/${encodeURIComponent(id)}`);
export const cancelRun = (id) => post(`/api/runs/${encodeURIComponent(id)}/cancel`);
export const retryRun = (id) => post(`/api/runs/${encodeURIComponent(id)}/retry`);
export const optimizeRun = (id, { exports, name }) =>
  post(`/api/runs/${encodeURIComponent(id)}/optimize`, name ? { exports, name } : { exports });
export const getMetrics = (id, { afterStep = -1, keys, maxPoints } = {}, opts) =>
  get(`/api/runs/${encodeURIComponent(id)}/metrics`, { after_step: afterStep, keys, max_points: maxPoints }, opts);
export const getMetricKeys = (id, { after, limit = 10000 } = {}, opts) =>
  get(`/api/runs/${encodeURIComponent(id)}/metrics/keys`, { after, limit }, opts);
export const getMetricTimes = (id, key, opts) =>
  get(`/api/runs/${encodeURIComponent(id)}/metrics/times`, { key }, opts);
export const getVariants = (id, opts) => get(`/api/runs/${encodeURIComponent(id)}/variants`, undefined, opts);
export const getLogs = (id, opts) => get(`/api/runs/${encodeURIComponent(id)}/logs`, undefined, opts);
export const getConfusionFigure = (variantId, opts) =>
  get(`/api/variants/${encodeURIComponent(variantId)}/figures/confusion`, undefined, opts);
export const variantDownloadUrl = (variant) =>
  variant.download_url || `/api/variants/${encodeURIComponent(variant.id)}/download`;

// Experiments, sweeps, launch form
export const listExperiments = (opts) => get("/api/experiments", undefined, opts);
export const createExperiment = (body) => post("/api/experiments", body);
export const createSweep = (body) => post("/api/sweeps", body);
export const previewSweep = (body, opts) => request("POST", "/api/sweeps/preview", { body, ...opts });
export const getTechniques = (opts) => get("/api/techniques", undefined, opts);
/** POST one file as multipart form data (field `file`, optional `name`); the stored record. */
async function uploadFile(path, file, name) {
  const body = new FormData();
  body.append("file", file);
  if (name) body.append("name", name);
  let response;
  try {
    response = await fetch(path, {
      method: "POST",
      body,
      credentials: "same-origin",
      headers: { "X-Requested-With": "optiboard", Accept: "application/json" },
    });
  } catch {
    throw new ApiError(0, "Cannot reach the optiboard server. Is it running?");
  }
  const payload = await response.json().catch(() => null);
  if (!response.ok) {
    const detail = payload && payload.detail;
    throw new ApiError(response.status, describe(response.status, detail), Array.isArray(detail) ? detail : []);
  }
  return payload;
}
/** Upload an .npz (x_train, y_train, x_test, y_test); the dataset record. */
export const uploadDataset = (file, name) => uploadFile("/api/datasets", file, name);
export const listDatasets = (opts) => get("/api/datasets", undefined, opts);

// Uploaded models (.keras, SavedModel .zip, .tflite): checked in a sandbox, with a preflight
export const uploadModel = (file, name) => uploadFile("/api/models", file, name);
export const listModels = (opts) => get("/api/models", undefined, opts);
export const getModel = (id, opts) => get(`/api/models/${encodeURIComponent(id)}`, undefined, opts);
export const deleteModel = (id) => request("DELETE", `/api/models/${encodeURIComponent(id)}`);

// Compare
export const getCompare = ({ runs, baseline, x, device, summary, groups }, opts) =>
  get("/api/compare", { runs: runs.join(","), baseline, x, device, summary, groups }, opts);
export function compareExportUrl(kind, { runs, baseline, x, device, summary, groups }) {
  const path = { csv: "/api/compare.csv", json: "/api/compare.json", html: "/api/compare/report.html" }[kind];
  const url = new URL(path, window.location.origin);
  url.searchParams.set("runs", runs.join(","));
  if (baseline) url.searchParams.set("baseline", String(baseline));
  if (x) url.searchParams.set("x", x);
  if (device) url.searchParams.set("device", device);
  if (summary) url.searchParams.set("summary", summary);
  if (groups) url.searchParams.set("groups", "true");
  return url.pathname + url.search;
}

// Devices (issue 18): device workers online, and measurements of a run's variants on one
export const listDevices = (opts) => get("/api/devices", undefined, opts);
export const getMeasurements = (id, opts) => get(`/api/runs/${encodeURIComponent(id)}/measurements`, undefined, opts);
export const measureOnDevice = (id, device) => post(`/api/runs/${encodeURIComponent(id)}/measurements`, { device });

// Operations
export const listWorkers = (opts) => get("/api/workers", undefined, opts);
