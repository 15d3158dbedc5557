"""The compare table: one row per measured variant, with deltas against a baseline.

Pure functions over plain mappings (the route turns store records into dicts), so the same
rows feed the JSON API, the CSV/JSON exports, the figures and the HTML report.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

from backend.figures.pareto import pareto_flags
from backend.figures.text import finite
from runspec.vocabulary import (
    DEFAULT_SUMMARY,
    HEADLINE_FORMATS,
    LOGGED_FORMAT,
    PTQ_NAME,
    REFERENCE_FORMATS,
    SUMMARY_COLUMNS,
    TECHNIQUE_NAMES,
    UPLOADED_FORMAT,
    UPLOADED_NAME,
    VARIANT_PROTOCOL_FIELDS,
)

# A variant against its run's same-budget control (vs_control below).
CONTROL_COLUMNS = (
    "control_run_id",
    "control_format",
    "vs_control_accuracy",
    "vs_control_f1",
    "vs_control_size_ratio",
    "vs_control_gzip_ratio",
)
CSV_COLUMNS = (
    "run_id",
    "run_name",
    "variant_id",
    "format",
    "technique",
    "accuracy",
    "delta_accuracy",
    "precision",
    "recall",
    "f1",
    "size_bytes",
    "size_ratio",
    "gzip_bytes",
    "params",
    "nonzero_params",
    "latency_p50_ms",
    "latency_p95_ms",
    *VARIANT_PROTOCOL_FIELDS,
    "latency_protocol",
    "top_op",
    "float_ops",
    "latency_ratio",
    "device",
    "pareto",
    "baseline_run_id",
    "baseline_format",
    *CONTROL_COLUMNS,
    "optimizer",
    "learning_rate",
    "batch_size",
    "epochs",
    "width_multiplier",
    *(
        f"spec_{k}"
        for k in ("architecture", "dataset", "seed", "target_sparsity", "number_of_clusters", "temperature", "alpha")
    ),
    "technique_settings",
    "exports",
    "summary",
    *(f"logged_{k}" for k in SUMMARY_COLUMNS),
)
# Technique settings that get a column of their own (the value a sweep usually varies), as
# spec_<setting>; a run whose recipe has none of that technique leaves it empty.
SPEC_TECHNIQUE_COLUMNS = ("target_sparsity", "number_of_clusters", "temperature", "alpha")
_COPIED = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "size_bytes",
    "gzip_bytes",
    "params",
    "nonzero_params",
    "latency_p50_ms",
    "latency_p95_ms",
    *VARIANT_PROTOCOL_FIELDS,
    "device",
)


PTQ = PTQ_NAME
# TFLite formats whose weights the converter quantizes after training.
QUANTIZED_FORMATS = ("tflite-dynamic", "tflite-float16", "tflite-int8")


def technique_label(run: Mapping[str, Any], fmt: str | None = None, parent: Mapping[str, Any] | None = None) -> str:
    """What made this model: the recipe's technique chain, then post-training quantization when
    the variant is a quantized TFLite export, e.g. 'pruning → post-training quantization';
    'baseline' when there is neither.

    One technique has one label whichever run made the model: an int8 export of a train run and
    of an optimize run are both 'post-training quantization'. An optimize run's chain is its
    parent's (it trains nothing); QAT's own int8 conversion is not post-training quantization.
    """
    if fmt == UPLOADED_FORMAT:
        return UPLOADED_NAME
    source = parent if run.get("kind") == "optimize" and parent is not None else run
    names = [str(t.get("name")) for t in (source.get("spec") or {}).get("techniques", []) if isinstance(t, Mapping)]
    chain = [TECHNIQUE_NAMES.get(n, n) for n in names]
    if fmt in QUANTIZED_FORMATS and not (fmt == "tflite-int8" and "qat" in names):
        chain.append(PTQ)
    return " → ".join(chain) if chain else "baseline"


def _reference(variants: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    for fmt in REFERENCE_FORMATS:
        for v in variants:
            if v.get("format") == fmt:
                return v
    return variants[0] if variants else None


def runtime_of(variant: Mapping[str, Any]) -> str:
    """What ran the variant's latency loop: "tflite" (LiteRT) or "keras" (a Python call). An
    `uploaded` variant ran as what it was measured as (`extra.measured_as`: a .tflite upload or
    a converted SavedModel in LiteRT, a Keras upload in Keras)."""
    fmt = str(variant.get("format"))
    if fmt == UPLOADED_FORMAT:
        fmt = str((variant.get("extra") or {}).get("measured_as") or "keras")
    return "tflite" if fmt.startswith("tflite") else fmt


def _latency_reference(variants: Sequence[Mapping[str, Any]], variant: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The baseline variant a latency is divided by: one run by the same runtime (a TFLite
    invocation against a TFLite invocation, a Keras call against a Keras call), its float32
    model first. None when the baseline has no model of that runtime."""
    same = [v for v in variants if runtime_of(v) == runtime_of(variant)]
    return next((v for v in same if v.get("format") == "tflite-float32"), same[0] if same else None)


def protocol_text(extra: Mapping[str, Any]) -> str | None:
    """What the latency figures are, from a variant's `extra.protocol` (worker.engine.lite_protocol):
    'litert, batch 1, 1 thread, XNNPACK 8/8 ops, 20 warm-up, ≥200 runs and ≥1.0 s'; None when the
    variant predates the protocol; 'not measured' when its spec turned it off."""
    p = extra.get("protocol")
    if not isinstance(p, Mapping):
        return None
    if p.get("mode") == "off":
        return "not measured"
    threads = f"{p.get('threads')} thread" if p.get("threads") else "TensorFlow threads (Python call)"
    parts = [str(p.get("runtime")), "batch 1", threads]
    d = extra.get("delegate")
    if isinstance(d, Mapping):
        parts.append(f"{d.get('name')} {d.get('delegated_ops')}/{d.get('total_ops')} ops")
    floor = f" and ≥{p.get('min_duration_s')} s" if p.get("min_duration_s") else ""
    parts.append(f"{p.get('warmup_runs')} warm-up, ≥{p.get('runs')} runs{floor}")
    if p.get("mode") == "quick":
        parts.append("quick")
    return ", ".join(parts)


def measurement_columns(extra: Mapping[str, Any]) -> dict[str, Any]:
    """The row's protocol text, its op with most MACs ('CONV_2D 90%') and the ops an int8 export
    left in float ('SOFTMAX; ...'), from the variant's `extra`; None where not recorded."""
    ops = extra.get("op_profile") or []
    total = sum(int(r.get("macs") or 0) for r in ops)
    top = ops[0] if ops and total > 0 else None
    float_ops = extra.get("float_ops")
    return {
        "latency_protocol": protocol_text(extra),
        "top_op": f"{top['op']} {100 * int(top['macs']) / total:.0f}% of MACs" if top else None,
        "float_ops": "; ".join(float_ops) if isinstance(float_ops, list) and float_ops else None,
    }


# The setting a sweep usually varies, always shown; the others only when not the default.
MAIN_SETTINGS = {
    "pruning": ("target_sparsity",),
    "clustering": ("number_of_clusters",),
    "distillation": ("temperature", "alpha"),
    "qat": (),
}


def technique_settings(t: Mapping[str, Any]) -> str:
    """'pruning target_sparsity=0.8 epochs=3': the main settings and those not at their default."""
    from runspec.spec import RunSpec

    name = str(t.get("name"))
    model = next((m for m in _technique_models(RunSpec) if m.model_fields["name"].annotation.__args__[0] == name), None)
    parts = []
    for key, value in t.items():
        if key == "name" or isinstance(value, (dict, list)):
            continue
        default = model.model_fields[key].default if model is not None and key in model.model_fields else object()
        if key in MAIN_SETTINGS.get(name, ()) or value != default:
            parts.append(f"{key}={value}")
    return " ".join([name, *parts])


def _technique_models(spec: Any) -> list[Any]:
    """The technique spec classes (pydantic models) of the Technique union."""
    from typing import get_args

    from runspec.spec import Technique

    union = get_args(Technique)[0]  # Annotated[Union[...], Field(discriminator=...)]
    return [m for m in get_args(union) if hasattr(m, "model_fields")]


def recipe_columns(run: Mapping[str, Any], parent: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The spec values a comparison is usually about, as flat columns: optimizer, learning rate,
    batch size, epochs, width multiplier, every technique's settings ('pruning target_sparsity=0.8
    epochs=2; …') and the exports. An optimize run trains nothing: its recipe is its parent's."""
    spec = run.get("spec") or {}
    source = (parent.get("spec") or {}) if run.get("kind") == "optimize" and parent else spec
    training = source.get("training") or {}
    optimizer = training.get("optimizer") or {}
    techniques = [t for t in source.get("techniques") or [] if isinstance(t, Mapping)]
    settings = [technique_settings(t) for t in techniques]
    model = source.get("model") or {}
    dataset = source.get("dataset") or {}
    # the first technique that sets it (a chain rarely repeats one)
    own = {k: next((t[k] for t in techniques if t.get(k) is not None), None) for k in SPEC_TECHNIQUE_COLUMNS}
    return {
        "optimizer": optimizer.get("name"),
        "learning_rate": optimizer.get("learning_rate"),
        "batch_size": training.get("batch_size"),
        "epochs": training.get("epochs"),
        # an uploaded model's architecture is its own, whatever the spec's defaults say
        "width_multiplier": None if model.get("upload_id") else model.get("width_multiplier"),
        "spec_architecture": f"uploaded model {model['upload_id']}"
        if model.get("upload_id")
        else model.get("architecture"),
        "spec_dataset": dataset.get("name"),
        "spec_seed": dataset.get("seed"),
        **{f"spec_{k}": v for k, v in own.items()},
        "technique_settings": "; ".join(settings),
        "exports": "+".join(str(e) for e in spec.get("exports") or []),
    }


def _ratio(a: Any, b: Any) -> float | None:
    x, y = finite(a), finite(b)
    return x / y if x is not None and y not in (None, 0.0) else None


def _diff(a: Any, b: Any) -> float | None:
    x, y = finite(a), finite(b)
    return x - y if x is not None and y is not None else None


def vs_control(variant: Mapping[str, Any], control_variants: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The variant against its run's same-budget control (runspec.controls): the control's model
    of the same format (int8 against int8: the technique's effect at equal training), else the
    control's headline (runspec.vocabulary.HEADLINE_FORMATS). Accuracy and macro F1 as
    differences of fractions (positive: the technique is better), sizes raw and gzip as ratios
    (below 1: the technique's model is smaller). None everywhere when the control has no model."""
    by_format = {str(c.get("format")): c for c in control_variants}
    ref = by_format.get(str(variant.get("format"))) or next(
        (by_format[f] for f in HEADLINE_FORMATS if f in by_format), None
    )
    if ref is None:
        return dict.fromkeys(CONTROL_COLUMNS[1:])
    return {
        "control_format": ref.get("format"),
        "vs_control_accuracy": _diff(variant.get("accuracy"), ref.get("accuracy")),
        "vs_control_f1": _diff(variant.get("f1"), ref.get("f1")),
        "vs_control_size_ratio": _ratio(variant.get("size_bytes"), ref.get("size_bytes")),
        "vs_control_gzip_ratio": _ratio(variant.get("gzip_bytes"), ref.get("gzip_bytes")),
    }


def compare_rows(
    runs: Sequence[Mapping[str, Any]],
    variants: Sequence[Mapping[str, Any]],
    *,
    baseline_run_id: int | None = None,
    x: str = "size_bytes",
    parents: Mapping[int, Mapping[str, Any]] | None = None,
    logged: Mapping[int, Mapping[str, float | None]] | None = None,
    summary: str = DEFAULT_SUMMARY,
    controls: Mapping[int, Sequence[Mapping[str, Any]]] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Rows in run order, then variant order; and which variant the deltas refer to.

    `controls` maps a control run's id to its variants, compared or not: a run whose
    `control_run_id` is there gets the CONTROL_COLUMNS (`vs_control`), others None in them.

    `parents` maps the parent id of optimize runs to that run (for the technique label).
    `logged` maps a run id to its logged series summarised `summary`-wise ({key: value},
    backend.store.metrics.summarize_metrics): they fill the logged_<key> columns, and an external
    run without a model shows its summarised accuracy instead of the last one.
    Accuracy and size deltas refer to the baseline's reference variant (REFERENCE_FORMATS);
    the latency ratio to the baseline's variant of the same runtime (`_latency_reference`).
    """
    parents = parents or {}
    logged = logged or {}
    controls = controls or {}
    by_run: dict[int, list[Mapping[str, Any]]] = {}
    for v in variants:
        by_run.setdefault(int(v["run_id"]), []).append(v)
    baseline_id = (
        baseline_run_id
        if baseline_run_id in by_run
        else (next((int(r["id"]) for r in runs if int(r["id"]) in by_run), None))
    )
    ref = _reference(by_run.get(baseline_id, [])) if baseline_id is not None else None
    rows: list[dict[str, Any]] = []
    for run in runs:
        for v in by_run.get(int(run["id"]), []):
            row: dict[str, Any] = {
                "run_id": int(run["id"]),
                "run_name": run.get("name"),
                "variant_id": v.get("id"),
                "format": v.get("format"),
                "runtime": runtime_of(v),
                "technique": technique_label(run, v.get("format"), parents.get(int(run.get("parent_run_id") or 0))),
                # the user's model as it came was not made by this run's recipe
                **(
                    dict.fromkeys(recipe_columns(run, None))
                    if v.get("format") == UPLOADED_FORMAT
                    else recipe_columns(run, parents.get(int(run.get("parent_run_id") or 0)))
                ),
            }
            for key in _COPIED:
                value = v.get(key)
                row[key] = finite(value) if isinstance(value, float) else value
            row.update(measurement_columns(v.get("extra") or {}))
            acc, ref_acc = finite(row["accuracy"]), finite(ref.get("accuracy")) if ref else None
            row["delta_accuracy"] = acc - ref_acc if acc is not None and ref_acc is not None else None
            row["size_ratio"] = _ratio(row["size_bytes"], ref.get("size_bytes")) if ref else None
            lat_ref = _latency_reference(by_run.get(baseline_id, []), v) if ref and baseline_id is not None else None
            row["latency_ratio"] = _ratio(row["latency_p50_ms"], lat_ref.get("latency_p50_ms")) if lat_ref else None
            control_id = run.get("control_run_id")
            row["control_run_id"] = control_id
            row.update(
                vs_control(v, controls[control_id])
                if isinstance(control_id, int) and control_id in controls
                else dict.fromkeys(CONTROL_COLUMNS[1:])
            )
            rows.append(row)
        if int(run["id"]) not in by_run:
            row_of_log = _logged_row(run, ref, logged.get(int(run["id"])))
            if row_of_log is not None:
                rows.append(row_of_log)
    for row in rows:
        values = logged.get(int(row["run_id"])) or {}
        row["summary"] = summary
        row.update({f"logged_{k}": finite(values.get(k)) for k in SUMMARY_COLUMNS})
    for row, on_front in zip(rows, pareto_flags(rows, x, "accuracy"), strict=True):
        row["pareto"] = on_front
        # every row (and CSV line) names what its deltas refer to
        row["baseline_run_id"] = baseline_id if ref is not None else None
        row["baseline_format"] = ref.get("format") if ref is not None else None
    baseline = None
    if ref is not None:
        baseline = {"run_id": baseline_id, "variant_id": ref.get("id"), "format": ref.get("format")}
    return rows, baseline


def _logged_row(
    run: Mapping[str, Any], ref: Mapping[str, Any] | None, summarised: Mapping[str, float | None] | None = None
) -> dict[str, Any] | None:
    """An external run without a measured model, as a row of its own: its logged accuracy (the
    key of the run's `logged` headline, runspec.vocabulary.logged_headline, summarised as the
    reader chose when `summarised` has it, else the last value), no size or latency, so it is
    in the table and the exports but never on the accuracy-vs-size chart or the front."""
    headline = run.get("headline") or {}
    if headline.get("format") != LOGGED_FORMAT:
        return None
    key = str(headline.get("accuracy_key"))
    acc = finite(summarised[key]) if summarised and key in summarised else finite(headline.get("accuracy"))
    ref_acc = finite(ref.get("accuracy")) if ref else None
    row: dict[str, Any] = {
        "run_id": int(run["id"]),
        "run_name": run.get("name"),
        "variant_id": None,
        "format": LOGGED_FORMAT,
        "technique": f"external: {key} the script logged, no model measured",
        # its spec is the defaults an external run is created with, not what the script ran
        **dict.fromkeys(recipe_columns(run, None)),
        **dict.fromkeys(_COPIED),
        **dict.fromkeys(("latency_protocol", "top_op", "float_ops")),
        **dict.fromkeys(CONTROL_COLUMNS),
    }
    row.update(
        accuracy=acc,
        delta_accuracy=acc - ref_acc if acc is not None and ref_acc is not None else None,
        size_ratio=None,
        latency_ratio=None,
    )
    return row


def _cell(value: Any) -> Any:
    # A cell starting with = + - @ is a formula to spreadsheet programs: neutralize user text.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def rows_csv(rows: Sequence[Mapping[str, Any]], extra_columns: Sequence[str] = ()) -> str:
    """CSV_COLUMNS then `extra_columns` (e.g. the per-device latency columns), one line per row."""
    return table_csv(rows, (*CSV_COLUMNS, *extra_columns))


def table_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A header of `columns`, then one line per row (missing keys and None empty; text that a
    spreadsheet would run as a formula is prefixed with a quote)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return out.getvalue()


def group_csv_columns() -> tuple[str, ...]:
    """The group CSV's columns: what the group is, then per aggregated figure its mean, n, std
    and interval (backend.store.groups.GROUP_METRICS), then the differences against the
    baseline group with Welch's interval (DIFFERENCE_METRICS)."""
    from backend.store.groups import DIFFERENCE_METRICS, GROUP_METRICS

    head = ("group_key", "group_name", "run_ids", "n_runs", "format", "technique", "is_baseline", "pareto")
    stats = tuple(f"{m}{s}" for m in GROUP_METRICS for s in ("", "_n", "_std", "_ci_low", "_ci_high"))
    deltas = tuple(f"delta_{m}{s}" for m in DIFFERENCE_METRICS for s in ("", "_ci_low", "_ci_high", "_significant"))
    recipe = ("optimizer", "learning_rate", "batch_size", "epochs", "width_multiplier", "technique_settings", "summary")
    return (*head, *stats, *deltas, *recipe)


def group_rows_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """The seed-group rows (backend.store.groups.group_rows) as CSV, one line per group and
    format; `run_ids` joined by spaces."""
    columns = group_csv_columns()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        cells = {**row, "run_ids": " ".join(str(i) for i in row.get("run_ids") or [])}
        writer.writerow([_cell(cells.get(c)) for c in columns])
    return out.getvalue()
