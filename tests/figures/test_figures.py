"""The figure functions: traces, dimming, empty states, JSON-safety."""

from __future__ import annotations

import json
import math

import plotly.graph_objects as go
import pytest

from backend.figures import confusion_figure, latency_figure, loss_figure, tradeoff_figure
from backend.figures.theme import PALETTE
from backend.figures.tradeoff import DIMMED
from tests.figures.rows import crafted, row


def strict_json(fig):
    return json.loads(json.dumps(fig, allow_nan=False))


def by_role(fig, role):
    return [t for t in fig["data"] if (t.get("meta") or {}).get("role") == role]


def test_tradeoff_one_trace_per_technique_and_the_front_as_a_line():
    fig = strict_json(tradeoff_figure(crafted()))
    variants = by_role(fig, "variants")
    legend = sorted(t["name"] for t in variants if t["showlegend"])
    assert legend == ["baseline", "clustering", "pruning", "qat"]  # one legend entry each
    assert sum(len(t["x"]) for t in variants) == 6
    (front,) = by_role(fig, "pareto")
    assert front["mode"] == "lines"
    assert list(zip(front["x"], front["y"], strict=True)) == [(100, 0.90), (200, 0.95), (400, 0.97)]
    assert fig["layout"]["xaxis"]["type"] == "log"


def test_tradeoff_dims_dominated_points_only():
    fig = tradeoff_figure(crafted())
    opacity = {}
    for t in by_role(fig, "variants"):
        for x, o in zip(t["x"], t["marker"]["opacity"], strict=True):
            opacity[x] = o
    assert opacity == {100: 1.0, 200: 1.0, 400: 1.0, 300: DIMMED, 500: DIMMED, 250: DIMMED}


@pytest.mark.parametrize("x", ["size_bytes", "gzip_bytes", "params", "latency_p50_ms"])
def test_tradeoff_every_x_axis(x):
    fig = strict_json(tradeoff_figure(crafted(), x=x))
    assert by_role(fig, "pareto")


def test_tradeoff_rejects_unknown_axis():
    with pytest.raises(ValueError):
        tradeoff_figure(crafted(), x="__class__")


def test_tradeoff_empty_state():
    fig = strict_json(tradeoff_figure([row(1, "a", "keras", "b", None, None)]))
    assert fig["data"] == []
    assert "No measured variants" in fig["layout"]["annotations"][0]["text"]


def test_latency_bars_with_p95_whiskers():
    rows = crafted()
    fig = strict_json(latency_figure(rows))
    bars = by_role(fig, "latency")
    assert all(t["type"] == "bar" for t in bars)
    # like with like: the TFLite variants; the two Keras ones are named in the title
    assert sum(len(t["x"]) for t in bars) == len([r for r in rows if r["format"].startswith("tflite")]) == 4
    assert "2 Keras variants in the table" in fig["layout"]["title"]["text"]
    for t in bars:
        assert t["error_y"]["array"] == pytest.approx([0.03] * len(t["x"]))
        assert t["error_y"]["arrayminus"] == [0.0] * len(t["x"])
    labels = [x for t in bars for x in t["x"]]
    assert len(set(labels)) == len(labels)  # categories unique, even for equal names


def test_latency_same_name_two_runs_stay_apart():
    rows = [row(1, "same", "keras", "b", 0.9, 100), row(2, "same", "keras", "b", 0.9, 100)]
    fig = latency_figure(rows)
    labels = [x for t in by_role(fig, "latency") for x in t["x"]]
    assert len(set(labels)) == 2


def test_latency_empty_state():
    fig = strict_json(latency_figure([row(1, "a", "keras", "b", 0.9, 100, p50=None, p95=None)]))
    assert fig["data"] == [] and fig["layout"]["annotations"]


def test_loss_train_solid_validation_dashed_and_nan_gaps():
    series = {
        "#1 a": {
            "loss": {"steps": [1, 2, 3], "values": [2.0, "NaN", 1.0]},
            "val_loss": {"steps": [3], "values": [1.5]},
        },
        "#2 b": {"loss": {"steps": [1, 2], "values": [2.2, math.inf]}},
    }
    fig = strict_json(loss_figure(series))
    assert [t["name"] for t in fig["data"]] == ["#1 a · loss", "#1 a · val_loss", "#2 b · loss"]
    assert fig["data"][0]["y"] == [2.0, None, 1.0]
    assert fig["data"][2]["y"] == [2.2, None]
    assert fig["data"][0]["line"]["dash"] == "solid" and fig["data"][1]["line"]["dash"] == "dash"
    assert fig["data"][0]["line"]["color"] == fig["data"][1]["line"]["color"]
    assert fig["data"][0]["line"]["color"] != fig["data"][2]["line"]["color"]


def test_loss_traces_are_valid_plotly():
    # styles are validated once per metric and copied: the copies must still be valid traces
    series = {"#1 a": {"loss": {"steps": [1, 2], "values": [2.0, 1.0]}, "val_loss": {"steps": [2], "values": [1.5]}}}
    fig = loss_figure(series)
    assert go.Figure(fig).to_plotly_json()["data"] == fig["data"]
    assert fig["data"][1]["mode"] == "lines+markers"  # few runs: validation points marked


def test_loss_with_many_runs_draws_one_trace_per_colour_and_keeps_every_point():
    n = len(PALETTE) * 3 + 1
    series = {
        f"#{i} r": {
            "loss": {"steps": [0, 5, 9], "values": [2.0, 50.0 + i, -50.0]},  # spikes kept as given
            "val_loss": {"steps": [9], "values": [1.0 + i]},
        }
        for i in range(n)
    }
    fig = strict_json(loss_figure(series))
    go.Figure(fig)  # valid plotly
    assert len(fig["data"]) == 2 * len(PALETTE)
    assert fig["layout"]["showlegend"] is False
    assert all(t["mode"] == "lines" and t["connectgaps"] is False for t in fig["data"])
    train = [t for t in fig["data"] if t["meta"]["key"] == "loss"]
    assert {t["line"]["color"] for t in train} == set(PALETTE)
    # every run's points are there, each labelled with its run, runs separated by a gap
    points = {
        (t["text"][j], x, y)
        for t in train
        for j, (x, y) in enumerate(zip(t["x"], t["y"], strict=True))
        if x is not None
    }
    assert points == {
        (f"#{i} r · loss", x, y) for i in range(n) for x, y in zip([0, 5, 9], [2.0, 50.0 + i, -50.0], strict=True)
    }
    first = train[0]
    assert first["x"] == [0, 5, 9, None, 0, 5, 9, None, 0, 5, 9, None, 0, 5, 9]
    assert first["text"][0] == "#0 r · loss" and first["text"][4] == f"#{len(PALETTE)} r · loss"
    assert "%{text}" in first["hovertemplate"]


def test_loss_empty_state():
    fig = strict_json(loss_figure({"#1 a": {}}))
    assert fig["data"] == [] and "No loss points" in fig["layout"]["annotations"][0]["text"]


def test_confusion_heat_map_rows_are_true_classes():
    fig = strict_json(confusion_figure([[8, 2], [1, 9]], ["cat", "dog"]))
    (heat,) = fig["data"]
    assert heat["type"] == "heatmap"
    assert heat["text"] == [[8, 2], [1, 9]]
    assert heat["z"] == [[0.8, 0.2], [0.1, 0.9]]
    assert fig["layout"]["yaxis"]["autorange"] == "reversed"


def test_confusion_checks_labels_and_handles_empty():
    with pytest.raises(ValueError):
        confusion_figure([[1, 0], [0, 1]], ["only-one"])
    assert confusion_figure([], None)["layout"]["annotations"]


def test_tradeoff_legend_swatch_is_never_the_dimmed_style_when_a_point_is_on_the_front():
    fig = tradeoff_figure(crafted())
    shown = {t["name"]: t for t in by_role(fig, "variants") if t["showlegend"]}
    assert set(shown["pruning"]["marker"]["opacity"]) == {1.0}  # pruning has a front point
    assert set(shown["qat"]["marker"]["opacity"]) == {DIMMED}  # qat has none


@pytest.mark.parametrize(
    ("accuracies", "decimals"),
    [
        ((0.90, 0.97), 3),  # the crafted spread: three decimals tell ticks apart
        ((0.8568, 0.8582, 0.8589), 4),  # one model's variants within 0.2 points
        ((0.91234, 0.91241), 5),  # near-identical exports
    ],
)
def test_tradeoff_accuracy_ticks_never_repeat_a_label(accuracies, decimals):
    rows = [row(i, f"r{i}", "keras", "baseline", a, 100 * (i + 1)) for i, a in enumerate(accuracies)]
    fmt = tradeoff_figure(rows)["layout"]["yaxis"]["tickformat"]
    assert fmt == f".{decimals}f"
    # Plotly places about five ticks over the span; with this format none print alike
    lo, hi = min(accuracies), max(accuracies)
    ticks = [lo + k * (hi - lo) / 4 for k in range(5)]
    if decimals < 5:
        assert len({format(t, fmt[1:]) for t in ticks}) == 5


def test_latency_is_a_log_axis_with_readable_ticks():
    rows = [
        row(1, "k", "keras", "b", 0.9, 100, p50=0.8, p95=5.0),
        row(2, "i8", "tflite-int8", "b", 0.9, 100, p50=0.005, p95=0.009),
        row(3, "f32", "tflite-float32", "b", 0.9, 100, p50=0.02, p95=0.03),
    ]
    fig = strict_json(latency_figure(rows))
    y = fig["layout"]["yaxis"]
    assert y["type"] == "log"
    assert y["ticktext"] == ["0.005 ms", "0.01 ms", "0.02 ms"]  # p50 0.005 to p95 0.03
    assert y["tickvals"] == pytest.approx([0.005, 0.01, 0.02])
    assert [x for t in by_role(fig, "latency") for x in t["x"]] == ["#2 i8 · tflite-int8", "#3 f32 · tflite-float32"]
    only_keras = strict_json(latency_figure(rows[:1]))  # nothing to compare it with: drawn alone
    assert sum(len(t["x"]) for t in by_role(only_keras, "latency")) == 1
    assert only_keras["layout"]["title"]["text"].startswith("Keras latency")


@pytest.mark.parametrize(
    ("sizes", "labels"),
    [
        ([48_000, 680_000], ["50 KiB", "100 KiB", "200 KiB", "500 KiB", "1 MiB"]),
        ([2_000_000, 9_000_000], ["2 MiB", "5 MiB", "10 MiB"]),
    ],
)
def test_size_axis_ticks_are_binary_units_in_1_2_5_steps(sizes: list[int], labels: list[str]):
    rows = [row(i, f"r{i}", "tflite-int8", "b", 0.9 + i / 100, s) for i, s in enumerate(sizes)]
    x = strict_json(tradeoff_figure(rows, x="size_bytes"))["layout"]["xaxis"]
    assert x["type"] == "log" and x["ticktext"] == labels
    assert all("KB" not in t and "MB" not in t for t in x["ticktext"])


def test_accuracy_axis_stays_inside_zero_one():
    rows = [row(1, "a", "keras", "b", 0.2, 100), row(2, "b", "keras", "b", 0.99, 200)]
    lo, hi = strict_json(tradeoff_figure(rows))["layout"]["yaxis"]["range"]
    assert 0.0 <= lo < 0.2 and 0.99 < hi <= 1.0
