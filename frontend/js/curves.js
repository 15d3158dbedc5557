// The run page's curve views: EMA smoothing, x axes (step, epoch, relative and wall time),
// phase marks, metric-key grouping and legend names. Pure functions of the data; charts.js draws.

/**
 * TensorBoard's smoothing: an exponential moving average, debiased so the first points are not
 * pulled toward zero (tensorboard/plugins/scalar/vz_line_chart2: "smoothing"). weight in [0, 1);
 * 0 returns the values unchanged. Gaps (null) stay gaps and do not reset the average.
 * @param {(number|null)[]} values
 * @param {number} weight
 */
export function ema(values, weight) {
  if (!(weight > 0)) return values.slice();
  let last = 0;
  let n = 0;
  return values.map((v) => {
    if (v === null || !Number.isFinite(v)) return null;
    last = last * weight + (1 - weight) * v;
    n += 1;
    return last / (1 - weight ** n);
  });
}

/** Piecewise-linear y(x) through sorted anchors (xs ascending), extrapolated at both ends. */
export function interpolate(xs, ys, x) {
  const n = xs.length;
  if (n === 0) return null;
  if (n === 1) return ys[0];
  let lo = 0;
  let hi = n - 1;
  if (x <= xs[0]) hi = 1;
  else if (x >= xs[n - 1]) lo = n - 2;
  else {
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (xs[mid] <= x) lo = mid;
      else hi = mid;
    }
  }
  const span = xs[hi] - xs[lo];
  return span === 0 ? ys[lo] : ys[lo] + ((ys[hi] - ys[lo]) * (x - xs[lo])) / span;
}

/**
 * Anchors that turn a step into an epoch: the engine logs "epoch" = epochs done at each epoch's
 * last step, so (0, 0) then (step_k, k). null when the run logged no epochs.
 */
export function epochAnchors(series) {
  const s = series.epoch;
  if (!s || !s.steps.length) return null;
  const xs = [0];
  const ys = [0];
  s.steps.forEach((step, i) => {
    const v = Number(s.values[i]);
    if (Number.isFinite(v) && step > xs[xs.length - 1]) {
      xs.push(step);
      ys.push(v);
    }
  });
  return xs.length > 1 ? { xs, ys } : null;
}

/**
 * The x values of a series for the chosen axis.
 * @param {number[]} steps
 * @param {"step"|"epoch"|"relative"|"wall"} axis
 * @param {{epochs: ?{xs:number[], ys:number[]}, times: ?{steps:number[], wall_times:number[]}}} anchors
 */
export function xValues(steps, axis, anchors) {
  if (axis === "epoch" && anchors.epochs) return steps.map((s) => interpolate(anchors.epochs.xs, anchors.epochs.ys, s));
  if ((axis === "relative" || axis === "wall") && anchors.times && anchors.times.steps.length) {
    const t = anchors.times;
    const t0 = t.wall_times[0];
    return steps.map((s) => {
      const w = interpolate(t.steps, t.wall_times, s);
      return axis === "relative" ? w - t0 : new Date(w * 1000).toISOString();
    });
  }
  return steps;
}

// keys the engine logs that mark steps rather than being curves
export const NOT_CURVES = new Set(["epoch", "phase"]);

// the worker's samples of the job process (worker/system_metrics.py): stepped in seconds since
// the job started, so drawn on their own chart, never with the training curves
export const SYSTEM_PREFIX = "system/";
export const isSystemKey = (key) => key.startsWith(SYSTEM_PREFIX);
/** Keys the curve charts and the key chooser offer: neither step markers nor system samples. */
export const isCurveKey = (key) => !NOT_CURVES.has(key) && !isSystemKey(key);

/** The keys plotted before the user chooses: the usual training curves. */
export function defaultKeys(keys) {
  const usual = /^(val_|train_)?(loss|acc|accuracy|sparse_categorical_accuracy)$|^lr$|learning_rate/;
  const picked = keys.filter((k) => isCurveKey(k) && usual.test(k));
  return picked.length ? picked.slice(0, 12) : keys.filter(isCurveKey).slice(0, 6);
}

/** Keys → the charts they go on: loss, accuracy, learning rate, and one chart of the rest. */
export function groupKeys(keys) {
  const groups = { loss: [], accuracy: [], lr: [], other: [] };
  for (const key of [...keys].sort()) {
    if (!isCurveKey(key)) continue;
    const k = key.toLowerCase();
    if (k.includes("loss")) groups.loss.push(key);
    else if (k.includes("acc")) groups.accuracy.push(key);
    else if (k === "lr" || k.includes("learning_rate")) groups.lr.push(key);
    else groups.other.push(key);
  }
  // train first, then validation, so colours pair up
  for (const g of Object.values(groups))
    g.sort((a, b) => Number(a.startsWith("val_")) - Number(b.startsWith("val_")) || a.localeCompare(b));
  return groups;
}

/**
 * What a key's points are, for the legend: an optiboard run logs "loss" as the mean over each
 * interval of batches, "train_loss" as the epoch mean and "val_loss" at each epoch's end.
 * External runs log what they like: their keys are shown as they are.
 */
export function legendName(key, run) {
  if (!run || run.external) return key;
  const every = run.spec && run.spec.training ? run.spec.training.log_every_n_batches : null;
  if (key.startsWith("val_")) return `${key} (end of epoch)`;
  if (key.startsWith("train_")) return `${key} (epoch mean)`;
  if (key === "lr" || key.includes("learning_rate")) return `${key} (per batch)`;
  return every ? `${key} (mean of ${every} batches)` : `${key} (batch mean)`;
}

/** A series whose every value is the same (a constant learning rate): say it, don't chart it. */
export function constantValue(s) {
  if (!s || !s.values.length) return null;
  const first = s.values.find((v) => Number.isFinite(v));
  if (first === undefined) return null;
  return s.values.every((v) => !Number.isFinite(v) || Math.abs(v - first) <= Math.abs(first) * 1e-9) ? first : null;
}

/**
 * Where each technique phase starts: the engine logs "phase" = k at the step phase k begins
 * (0: plain training, k: the spec's k-th technique). Returns [{step, label}] without phase 0.
 */
export function phases(series, run) {
  const s = series.phase;
  if (!s) return [];
  const techniques = (run && run.spec && run.spec.techniques) || [];
  const names = {
    pruning: "pruning",
    qat: "quantization-aware training",
    clustering: "weight clustering",
    distillation: "knowledge distillation",
    fine_tuning: "plain fine-tuning",
  };
  const out = [];
  s.steps.forEach((step, i) => {
    const k = Math.round(Number(s.values[i]));
    if (k >= 1) {
      const t = techniques[k - 1];
      out.push({ step, label: t ? names[t.name] || t.name : `phase ${k}` });
    }
  });
  return out;
}
