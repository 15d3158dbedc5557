// The vocabulary the server defines once (runspec/vocabulary.py, GET /api/vocabulary): run
// statuses and which are terminal or retryable, export formats, the headline rule, chart x axes.
// Loaded once per page before the page module runs (top-level await), so no page keeps a copy.

import * as api from "./api.js";

let loaded = null;
try {
  loaded = await api.getVocabulary();
} catch {
  // the page's own requests fail the same way and show the error (or the sign-in page)
  loaded = null;
}

/** @type {{statuses: string[], terminal_statuses: string[], retryable_statuses: string[], export_formats: string[], variant_formats: string[], headline_formats: string[], x_axes: Object<string,string>, run_chart_x_axes: Object<string,string>}} */
export const VOCAB = loaded || {
  statuses: [],
  terminal_statuses: [],
  retryable_statuses: [],
  export_formats: [],
  variant_formats: [],
  headline_formats: [],
  x_axes: {},
  run_chart_x_axes: {},
  own_device: "worker",
  measurement_statuses: [],
  study_statuses: [],
  active_study_statuses: [],
};

const terminal = new Set(VOCAB.terminal_statuses);
const retryable = new Set(VOCAB.retryable_statuses);
export const isTerminal = (status) => terminal.has(status);
export const isRetryable = (status) => retryable.has(status);
