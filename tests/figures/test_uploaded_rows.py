"""An uploaded model's variant in the comparison (fresh-user report): it is the baseline of its
run's deltas, it runs in the runtime it was measured as (a Keras upload is never ratioed against
a TFLite invocation, a .tflite upload is a TFLite row), it has no recipe of the run, and a
technique keeps its colour whatever the x axis."""

from __future__ import annotations

from typing import Any

from backend.dispatch.measuring import runs_in_litert
from backend.figures.latency import latency_figure
from backend.figures.table import compare_rows
from backend.figures.tradeoff import tradeoff_figure


def _variant(vid: int, run_id: int, fmt: str, acc: float, size: int, p50: float, **extra: Any) -> dict[str, Any]:
    return {
        "id": vid,
        "run_id": run_id,
        "format": fmt,
        "accuracy": acc,
        "size_bytes": size,
        "gzip_bytes": size // 2,
        "latency_p50_ms": p50,
        "latency_p95_ms": p50 * 1.2,
        "extra": extra,
    }


KERAS_UPLOAD = {
    "id": 1,
    "name": "mine",
    "kind": "train",
    "spec": {"model": {"upload_id": 3}, "training": {"epochs": 0}, "techniques": [{"name": "pruning"}]},
}
LITE_UPLOAD = {"id": 2, "name": "lite", "kind": "train", "spec": {"model": {"upload_id": 4}, "training": {"epochs": 0}}}
VARIANTS = [
    _variant(10, 1, "uploaded", 0.90, 800_000, 0.6, measured_as="keras"),
    _variant(11, 1, "keras", 0.88, 700_000, 0.5),
    _variant(12, 1, "tflite-float32", 0.88, 690_000, 0.02),
    _variant(13, 1, "tflite-int8", 0.87, 180_000, 0.01),
    _variant(20, 2, "uploaded", 0.85, 600_000, 0.03, measured_as="tflite-float32"),
]


def test_uploaded_variants_are_the_reference_and_ratio_like_with_like() -> None:
    rows, ref = compare_rows([KERAS_UPLOAD, LITE_UPLOAD], VARIANTS, baseline_run_id=1)
    by_id = {r["variant_id"]: r for r in rows}
    assert ref is not None and ref["format"] == "uploaded"  # deltas refer to the model as it came
    assert by_id[13]["delta_accuracy"] == 0.87 - 0.90
    assert [by_id[i]["runtime"] for i in (10, 11, 12, 13, 20)] == ["keras", "keras", "tflite", "tflite", "tflite"]
    # a Keras call against a Keras call; a TFLite invocation against the baseline's float32 TFLite
    assert by_id[11]["latency_ratio"] == 0.5 / 0.6
    assert by_id[20]["latency_ratio"] == 0.03 / 0.02
    assert by_id[10]["technique"] == "your model as uploaded" and by_id[10]["technique_settings"] is None
    assert by_id[13]["spec_architecture"] == "uploaded model 3" and by_id[13]["width_multiplier"] is None
    # the .tflite upload is drawn with the TFLite bars; the Keras upload is a "Keras variant in the table"
    bars = latency_figure(rows)
    drawn = {x for trace in bars["data"] for x in trace["x"]}
    assert any("lite" in x and "uploaded" in x for x in drawn) and not any(
        "mine" in x and "uploaded" in x for x in drawn
    )
    assert "2 Keras variants in the table" in bars["layout"]["title"]["text"]


def test_a_technique_keeps_its_colour_whatever_the_axis() -> None:
    rows, _ = compare_rows([KERAS_UPLOAD, LITE_UPLOAD], VARIANTS, baseline_run_id=1)
    colours = []
    for x in ("size_bytes", "latency_p50_ms"):
        fig = tradeoff_figure(rows, x=x)
        colours.append({t["name"]: t["marker"]["color"] for t in fig["data"] if t.get("mode") == "markers"})
    shared = set(colours[0]) & set(colours[1])
    assert shared and all(colours[0][n] == colours[1][n] for n in shared)


def test_an_uploaded_tflite_can_be_measured_on_a_device_and_a_keras_upload_cannot() -> None:
    assert runs_in_litert("uploaded", {"measured_as": "tflite-float32"})
    assert runs_in_litert("tflite-int8", {})
    assert not runs_in_litert("uploaded", {"measured_as": "keras"})
    assert not runs_in_litert("keras", None)
