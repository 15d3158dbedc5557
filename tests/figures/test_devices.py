"""Which device a comparison shows (backend.figures.devices) and the trade-off's new x axes:
pure functions, no server."""

from __future__ import annotations

import pytest

from backend.figures import latency_figure, tradeoff_figure
from backend.figures.devices import DEVICE_DEPENDENT, device_columns, on_device
from backend.figures.table import compare_rows, rows_csv

RUN = {"id": 1, "name": "r", "kind": "train", "spec": {}}


def variant(vid: int, fmt: str, p50: float | None, **more: object) -> dict[str, object]:
    return {
        "id": vid,
        "run_id": 1,
        "format": fmt,
        "accuracy": 0.9 - vid / 100,
        "size_bytes": 1000 * vid,
        "gzip_bytes": 900 * vid,
        "params": 10,
        "latency_p50_ms": p50,
        "latency_p90_ms": p50,
        "mcu_ram_bytes": 4096 if fmt == "tflite-int8" else None,
        **more,
    }


VARIANTS = [variant(1, "keras", 1.0), variant(2, "tflite-float32", 0.02), variant(3, "tflite-int8", 0.01)]
MEASURED = {
    (2, "rpi4"): {"figures": {"latency_p50_ms": 0.5, "latency_p90_ms": 0.6, "peak_memory_bytes": 7}},
}


def test_a_device_replaces_only_what_the_machine_decides() -> None:
    own = on_device(VARIANTS, MEASURED, "worker")
    assert [v["latency_p50_ms"] for v in own] == [1.0, 0.02, 0.01] and own[0]["device"] == "worker"
    rpi = on_device(VARIANTS, MEASURED, "rpi4")
    # measured there: rpi4's figures; not measured there (Keras, int8): no latency, not the worker's
    assert [v["latency_p50_ms"] for v in rpi] == [None, 0.5, None]
    assert rpi[1]["peak_memory_bytes"] == 7 and rpi[1]["latency_p99_ms"] is None
    # size, accuracy and the microcontroller estimate do not depend on the machine
    assert [(v["size_bytes"], v["accuracy"], v["mcu_ram_bytes"]) for v in rpi] == [
        (v["size_bytes"], v["accuracy"], v["mcu_ram_bytes"]) for v in VARIANTS
    ]
    assert "size_bytes" not in DEVICE_DEPENDENT and "mcu_ram_bytes" not in DEVICE_DEPENDENT
    assert VARIANTS[1]["latency_p50_ms"] == 0.02  # the input is not changed


def test_exports_carry_every_devices_columns() -> None:
    rows, _ = compare_rows([RUN], on_device(VARIANTS, MEASURED, "worker"))
    rows, names = device_columns(rows, MEASURED, ["jetson", "rpi4"])
    assert names[:2] == ["latency_p50_ms@jetson", "latency_p90_ms@jetson"]
    lines = rows_csv(rows, names).splitlines()
    header = lines[0].split(",")
    float32 = dict(zip(header, lines[2].split(","), strict=True))
    assert float32["device"] == "worker" and float32["latency_p50_ms"] == "0.02"
    assert float32["latency_p50_ms@rpi4"] == "0.5" and float32["latency_p50_ms@jetson"] == ""


@pytest.mark.parametrize("x", ["latency_p90_ms", "peak_memory_bytes", "mcu_ram_bytes"])
def test_the_new_x_axes_plot_what_has_the_figure_and_count_what_has_not(x: str) -> None:
    rows, _ = compare_rows([RUN], on_device(VARIANTS, MEASURED, "rpi4"), x=x)
    fig = tradeoff_figure(rows, x=x, device="rpi4")
    xs = [v for t in fig["data"] if (t.get("meta") or {}).get("role") == "variants" for v in t["x"]]
    expected = {"latency_p90_ms": [0.6], "peak_memory_bytes": [7], "mcu_ram_bytes": [4096]}[x]
    assert xs == expected
    title = fig["layout"]["title"]["text"]
    if x == "mcu_ram_bytes":  # the same everywhere: no device named, only int8 expected
        assert "rpi4" not in title and "not measured" not in title
    else:
        assert "on rpi4 · 1 TFLite variant not measured on rpi4" in title
    assert fig["layout"]["xaxis"]["type"] == "log"


def test_latency_chart_names_its_device_and_what_it_did_not_measure() -> None:
    rows, _ = compare_rows([RUN], on_device(VARIANTS, MEASURED, "rpi4"))
    title = latency_figure(rows, device="rpi4")["layout"]["title"]["text"]
    assert "latency on rpi4" in title and "1 TFLite not measured on rpi4" in title
    empty = latency_figure(compare_rows([RUN], on_device(VARIANTS, {}, "jetson"))[0], device="jetson")
    assert empty["layout"]["annotations"][0]["text"] == "No latency measurements on jetson yet"
