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
    assert technique_label(train, "tflite-int8") == technique_label(optimize_of_train, "tflite-int8", train) \
        == "post-training quantization"
    assert technique_label(train, "tflite-float32") == technique_label(train, "keras") == "baseline"
    assert technique_label(optimize_of_pruned, "tflite-float16", pruned) \
        == technique_label(pruned, "tflite-float16") == "pruning → post-training quantization"
    assert technique_label(optimize_of_pruned, "tflite-float32", pruned) == "pruning"
    qat = {"kind": "train", "spec": {"techniques": [{"name": "qat"}]}}
    assert technique_label(qat, "tflite-int8") == "quantization-aware training"
    assert technique_label(qat, "tflite-dynamic") == "quantization-aware training → post-training quantization"


def test_csv_neutralizes_formulas():
    from backend.figures.table import rows_csv

    text = rows_csv([{"run_id": 1, "run_name": '=HYPERLINK("http://x")', "accuracy": 0.5}])
    assert "'=HYPERLINK" in text.splitlines()[1]
