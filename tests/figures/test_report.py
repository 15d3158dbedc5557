"""report_html: one self-contained file that needs no network."""

from __future__ import annotations

import re

from backend.figures import latency_figure, loss_figure, report_html, tradeoff_figure
from backend.figures.table import compare_rows
from tests.figures.rows import crafted


def build() -> str:
    rows = crafted()
    for r in rows:
        r.update(pareto=False, delta_accuracy=0.01, size_ratio=0.5, latency_ratio=1.0)
    figs = {
        "tradeoff": tradeoff_figure(rows),
        "latency": latency_figure(rows),
        "loss": loss_figure({"#1 small": {"loss": {"steps": [1, 2], "values": [2.0, 1.0]}}}),
    }
    return report_html(rows, figs, [{"id": 1, "name": "small", "summary": "s", "status": "succeeded"}])


def test_plotly_is_inlined():
    from plotly.offline import get_plotlyjs

    html = build()
    assert get_plotlyjs()[:2000] in html
    assert html.count("<script") == 1 + 3 + 1  # plotly.js, three figure payloads, the boot script


def test_no_external_resource_is_referenced():
    html = build()
    # no element loads anything by URL: no src/href attributes at all outside the bundle text
    markup = re.sub(r"<script>.*?</script>", "", html, flags=re.S)
    markup = re.sub(r"<script type='application/json'[^>]*>.*?</script>", "", markup, flags=re.S)
    assert not re.search(r"\b(src|href)\s*=", markup, flags=re.I)
    assert "http://" not in markup and "https://" not in markup and "//cdn" not in markup
    assert "<link" not in markup and "@import" not in markup


def test_every_figure_and_the_table_are_in_it():
    html = build()
    assert html.count("data-figure=") == 3
    assert "<table>" in html and html.count("<tr") == 1 + len(crafted())


def test_compare_rows_deltas_against_the_baseline_reference_variant():
    runs = [
        {"id": 1, "name": "a", "spec": {"techniques": []}},
        {"id": 2, "name": "b", "spec": {"techniques": [{"name": "pruning"}, {"name": "qat"}]}},
    ]
    variants = [
        {
            "id": 11,
            "run_id": 1,
            "format": "keras",
            "accuracy": 0.9,
            "size_bytes": 1000,
            "latency_p50_ms": 2.0,
        },
        {
            "id": 12,
            "run_id": 1,
            "format": "tflite-float32",
            "accuracy": 0.92,
            "size_bytes": 800,
            "latency_p50_ms": 1.0,
        },
        {
            "id": 21,
            "run_id": 2,
            "format": "tflite-int8",
            "accuracy": 0.91,
            "size_bytes": 200,
            "latency_p50_ms": 0.5,
        },
    ]
    rows, ref = compare_rows(runs, variants, baseline_run_id=1)
    assert ref == {"run_id": 1, "variant_id": 12, "format": "tflite-float32"}
    by_id = {r["variant_id"]: r for r in rows}
    assert by_id[21]["technique"] == "pruning → quantization-aware training"  # QAT's own int8
    assert by_id[21]["delta_accuracy"] == -0.010000000000000009
    assert by_id[21]["size_ratio"] == 0.25 and by_id[21]["latency_ratio"] == 0.5
    # like with like: a Keras call is divided by the baseline's Keras call, not a TFLite invocation
    assert by_id[11]["latency_ratio"] == 1.0 and by_id[12]["latency_ratio"] == 1.0
    assert [r["pareto"] for r in rows] == [False, True, True]


def test_one_label_for_post_training_quantization_whichever_run_made_it():
    from backend.figures.table import technique_label

    train = {"id": 1, "kind": "train", "spec": {"techniques": []}}
    pruned = {"id": 2, "kind": "train", "spec": {"techniques": [{"name": "pruning"}]}}
    optimize_of_train = {"id": 3, "kind": "optimize", "parent_run_id": 1, "spec": {"techniques": []}}
    optimize_of_pruned = {"id": 4, "kind": "optimize", "parent_run_id": 2, "spec": {"techniques": []}}
    assert (
        technique_label(train, "tflite-int8")
        == technique_label(optimize_of_train, "tflite-int8", train)
        == "post-training quantization"
    )
    assert technique_label(train, "tflite-float32") == technique_label(train, "keras") == "baseline"
    assert (
        technique_label(optimize_of_pruned, "tflite-float16", pruned)
        == technique_label(pruned, "tflite-float16")
        == "pruning → post-training quantization"
    )
    assert technique_label(optimize_of_pruned, "tflite-float32", pruned) == "pruning"
    qat = {"kind": "train", "spec": {"techniques": [{"name": "qat"}]}}
    assert technique_label(qat, "tflite-int8") == "quantization-aware training"
    assert technique_label(qat, "tflite-dynamic") == "quantization-aware training → post-training quantization"


def test_csv_neutralizes_formulas():
    from backend.figures.table import rows_csv

    text = rows_csv([{"run_id": 1, "run_name": '=HYPERLINK("http://x")', "accuracy": 0.5}])
    assert "'=HYPERLINK" in text.splitlines()[1]


def test_rows_name_the_baseline_and_carry_the_recipe():
    from backend.figures.report import baseline_text, recipe_text, report_html
    from backend.figures.table import CSV_COLUMNS, rows_csv

    spec = {
        "training": {"optimizer": {"name": "adam", "learning_rate": 0.001}, "batch_size": 32, "epochs": 4},
        "model": {"width_multiplier": 0.5},
        "exports": ["float32", "int8"],
        "techniques": [{"name": "pruning", "target_sparsity": 0.8, "epochs": 2}],
    }
    runs = [
        {"id": 1, "name": "base", "kind": "train", "spec": {**spec, "techniques": []}},
        {"id": 2, "name": "p80", "kind": "train", "spec": spec},
        {"id": 3, "name": "ptq", "kind": "optimize", "parent_run_id": 2, "spec": {"exports": ["int8"]}},
    ]
    variants = [
        {"id": 11, "run_id": 1, "format": "tflite-float32", "accuracy": 0.9, "size_bytes": 800},
        {"id": 21, "run_id": 2, "format": "tflite-int8", "accuracy": 0.89, "size_bytes": 200},
        {"id": 31, "run_id": 3, "format": "tflite-int8", "accuracy": 0.89, "size_bytes": 200},
    ]
    rows, _ = compare_rows(runs, variants, baseline_run_id=1, parents={2: runs[1]})
    by_id = {r["variant_id"]: r for r in rows}
    assert all(r["baseline_run_id"] == 1 and r["baseline_format"] == "tflite-float32" for r in rows)
    assert by_id[21]["learning_rate"] == 0.001 and by_id[21]["width_multiplier"] == 0.5
    assert by_id[21]["technique_settings"] == "pruning target_sparsity=0.8 epochs=2"  # epochs set, not the default
    assert by_id[31]["technique_settings"] == by_id[21]["technique_settings"]  # the parent's recipe
    assert by_id[31]["technique"] == by_id[21]["technique"] == "pruning → post-training quantization"
    header = rows_csv(rows).splitlines()[0].split(",")
    assert header == list(CSV_COLUMNS) and {"learning_rate", "width_multiplier", "baseline_run_id"} <= set(header)
    assert (
        recipe_text(by_id[21])
        == "adam lr 0.001 · batch 32 · 4 epochs · width 0.5 · pruning target_sparsity=0.8 epochs=2"
    )
    assert baseline_text(rows).startswith("Deltas and ratios against #1 base · tflite-float32")
    assert "#1 base · tflite-float32" in report_html(rows, {}, runs)


def test_an_external_run_without_a_model_is_a_logged_row_never_on_the_front():
    from backend.figures import tradeoff_figure
    from backend.figures.table import rows_csv

    runs = [
        {"id": 1, "name": "base", "kind": "train", "spec": {"training": {"batch_size": 32}}},
        {
            "id": 2,
            "name": "my-mlp",
            "kind": "train",
            "external": True,
            "spec": {"training": {"batch_size": 32}},  # the defaults it was created with
            "headline": {"format": "logged", "accuracy": 0.95, "accuracy_key": "val_accuracy", "size_bytes": None},
        },
        {"id": 3, "name": "loss only", "kind": "train", "external": True, "spec": {}, "headline": None},
    ]
    variants = [{"id": 11, "run_id": 1, "format": "tflite-float32", "accuracy": 0.9, "size_bytes": 800}]
    rows, ref = compare_rows(runs, variants, baseline_run_id=1)
    assert ref is not None and [r["run_id"] for r in rows] == [1, 2]  # run 3 logged no accuracy
    logged = rows[1]
    assert logged["format"] == "logged" and logged["variant_id"] is None and logged["accuracy"] == 0.95
    assert logged["delta_accuracy"] == 0.95 - 0.9 and logged["size_bytes"] is None and logged["pareto"] is False
    assert "val_accuracy" in logged["technique"] and logged["batch_size"] is None  # no recipe it did not run
    assert rows[0]["pareto"] is True
    assert "logged" in rows_csv(rows)
    fig = tradeoff_figure(rows, x="size_bytes")
    plotted = [v for trace in fig["data"] for v in (trace.get("y") or [])]
    assert 0.95 not in plotted  # no size: never on the accuracy-vs-size chart


def test_exports_carry_the_latency_protocol():
    """Issue 18: the CSV/JSON rows and the HTML report carry p90 and the other protocol fields, the
    protocol as text, the dominant op and the ops left in float; an unstable figure is flagged."""
    import csv
    import io

    from backend.figures.report import report_html
    from backend.figures.table import compare_rows, rows_csv

    extra = {
        "protocol": {
            "mode": "full",
            "runtime": "litert",
            "threads": 1,
            "warmup_runs": 20,
            "runs": 200,
            "min_duration_s": 1.0,
        },
        "delegate": {"name": "XNNPACK", "delegated_ops": 7, "total_ops": 8},
        "op_profile": [
            {"op": "CONV_2D", "count": 3, "macs": 900, "time_share": None, "dtype": "int8"},
            {"op": "FULLY_CONNECTED", "count": 1, "macs": 100, "time_share": None, "dtype": "int8"},
        ],
        "float_ops": ["SOFTMAX", "MEAN"],
    }
    runs = [{"id": 1, "name": "base", "kind": "train", "spec": {}}]
    variants = [
        {
            "id": 11,
            "run_id": 1,
            "format": "tflite-int8",
            "accuracy": 0.9,
            "size_bytes": 800,
            "latency_p50_ms": 0.04,
            "latency_p90_ms": 0.05,
            "latency_p99_ms": 0.09,
            "latency_unstable": True,
            "latency_count": 12000,
            "peak_memory_bytes": 3_000_000,
            "mcu_ram_bytes": 2560,
            "mcu_flash_bytes": 800,
            "extra": extra,
        },
        {
            "id": 12,
            "run_id": 1,
            "format": "keras",
            "accuracy": 0.9,
            "size_bytes": 900,
            "latency_p50_ms": 0.5,
            "extra": {"protocol": {"mode": "quick", "runtime": "keras", "threads": None, "warmup_runs": 2, "runs": 10}},
        },
    ]
    rows, _ = compare_rows(runs, variants, baseline_run_id=1)
    line = next(csv.DictReader(io.StringIO(rows_csv(rows))))
    assert line["latency_p90_ms"] == "0.05" and line["latency_unstable"] == "True" and line["latency_count"] == "12000"
    assert line["mcu_ram_bytes"] == "2560" and line["peak_memory_bytes"] == "3000000"
    assert line["latency_protocol"] == "litert, batch 1, 1 thread, XNNPACK 7/8 ops, 20 warm-up, ≥200 runs and ≥1.0 s"
    assert line["top_op"] == "CONV_2D 90% of MACs" and line["float_ops"] == "SOFTMAX; MEAN"
    keras = rows[1]
    assert keras["latency_protocol"].startswith("keras, batch 1, TensorFlow threads (Python call)")
    assert keras["latency_ratio"] == 1.0  # against the baseline's Keras call (itself), never its TFLite 0.04 ms
    page = report_html(rows, {}, runs)
    assert "unstable: machine busy" in page and "p90 ms" in page and "MLPerf single-stream" in page
