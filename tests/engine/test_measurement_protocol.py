"""Issue 18 on a known tiny graph (conv 3×3 → depthwise 3×3 → add(skip) → flatten → dense): the
per-op table's exact op counts and MACs, the microcontroller arena of its liveness, the ops left
in float, XNNPACK's share of ops, and what `measure_variant` records under each protocol mode."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from runspec.spec import MeasurementSpec
from worker.engine.export import to_tflite
from worker.engine.graph_cost import Graph
from worker.engine.lite_protocol import delegation
from worker.engine.measure import TestSet as Split
from worker.engine.measure import measure_variant
from worker.engine.models import save_keras_model
from worker.engine.tfsetup import keras

# 8×8×1 input; conv to 4 channels (same padding) → 8·8·4 outputs × 3·3·1 = 2304 MACs;
# depthwise 3×3 → 8·8·4 × 3·3 = 2304; dense 256 → 10: 10 × 256 = 2560 (MobileNets §3.1).
EXPECTED_OPS = [
    {"op": "FULLY_CONNECTED", "count": 1, "macs": 2560},
    {"op": "CONV_2D", "count": 1, "macs": 2304},
    {"op": "DEPTHWISE_CONV_2D", "count": 1, "macs": 2304},
    {"op": "ADD", "count": 1, "macs": 0},
    {"op": "RESHAPE", "count": 1, "macs": 0},
]
# Live at ADD: the skip (a), the depthwise output (b) and the sum, 8·8·4 elements each.
ARENA_ELEMENTS = 3 * 8 * 8 * 4


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    inp = keras.Input((8, 8, 1))
    a = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    b = keras.layers.DepthwiseConv2D(3, padding="same")(a)
    x = keras.layers.Flatten()(keras.layers.Add()([a, b]))
    model = keras.Model(inp, keras.layers.Dense(10)(x))
    d = tmp_path_factory.mktemp("tiny")
    rep = np.random.default_rng(0).random((20, 8, 8, 1), dtype=np.float32)
    save_keras_model(model, d / "m.keras")
    return {
        "keras": d / "m.keras",
        **{f"tflite-{f}": to_tflite(model, f, d / f"{f}.tflite", representative=rep) for f in ("float32", "int8")},
    }


@pytest.mark.parametrize(("fmt", "dtype", "elem_bytes"), [("tflite-float32", "float32", 4), ("tflite-int8", "int8", 1)])
def test_op_table_macs_and_arena(tiny: dict[str, Path], fmt: str, dtype: str, elem_bytes: int) -> None:
    graph = Graph.read(tiny[fmt])
    rows = graph.op_profile()
    assert [{k: r[k] for k in ("op", "count", "macs")} for r in rows] == EXPECTED_OPS
    assert {r["dtype"] for r in rows} == {dtype}
    assert all(r["time_share"] is None for r in rows)  # LiteRT's Python API has no op profiler
    assert graph.total_macs() == 7168
    assert graph.arena_bytes() == ARENA_ELEMENTS * elem_bytes
    assert graph.float_ops() == (
        [] if dtype == "int8" else ["CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "RESHAPE", "FULLY_CONNECTED"]
    )


def test_not_a_tflite_file(tiny: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="TFL3"):
        Graph(tiny["keras"].read_bytes())


def test_delegation_from_the_node_list() -> None:
    def node(i: int, name: str, ins: list[int], outs: list[int]) -> dict:
        return {"index": i, "op_name": name, "inputs": np.array(ins), "outputs": np.array(outs)}

    # 0: t0→t3, 1: t3→t4, 2: t4→t5 (left on the CPU), DELEGATE covers nodes 0-1 (inputs t0 + weights)
    ops = [node(0, "CONV_2D", [0, 1], [3]), node(1, "ADD", [3, 2], [4]), node(2, "CUSTOM", [4], [5])]
    ops.append(node(3, "DELEGATE", [0, 1, 2], [4]))
    assert delegation(ops) == {"name": "XNNPACK", "delegated_ops": 2, "total_ops": 3}
    assert delegation(ops[:3])["delegated_ops"] == 0


def _test_set() -> Split:
    x = np.random.default_rng(1).random((16, 8, 8, 1), dtype=np.float32)
    return Split(x, np.arange(16, dtype=np.int32) % 10, 10)


def test_full_protocol_fields(tiny: dict[str, Path]) -> None:
    m = MeasurementSpec(latency_runs=50, warmup_runs=5, throughput_batch=4, min_duration_s=0.05)
    v = measure_variant(tiny["tflite-int8"], "tflite-int8", _test_set(), m)
    assert v.latency_threads == 1 and v.latency_count is not None and v.latency_count >= 50
    assert v.latency_min_ms <= v.latency_p50_ms <= v.latency_p90_ms <= v.latency_p99_ms  # type: ignore[operator]
    assert v.latency_std_ms is not None and v.latency_cv is not None and v.latency_unstable is not None
    assert v.init_ms > 0 and v.first_inference_ms > 0  # type: ignore[operator]
    assert v.load_avg_1m == pytest.approx(os.getloadavg()[0], abs=5.0)
    assert v.peak_memory_bytes is not None and v.peak_memory_bytes > 0
    assert v.mcu_ram_bytes == ARENA_ELEMENTS
    assert v.mcu_flash_bytes == tiny["tflite-int8"].stat().st_size
    assert v.extra["delegate"] == {"name": "XNNPACK", "delegated_ops": 5, "total_ops": 5}
    assert v.extra["float_ops"] == []
    assert v.extra["op_profile"][0]["op"] == "FULLY_CONNECTED"
    protocol = v.extra["protocol"]
    assert protocol["runtime"] == "litert" and protocol["threads"] == 1 and protocol["warmup_runs"] == 5
    assert protocol["min_duration_s"] == 0.05 and len(protocol["attempts"]) in (1, 2)
    cores = len(os.sched_getaffinity(0))
    if cores > 1:
        assert v.extra["latency_all_cores"]["threads"] == cores
        assert v.extra["latency_all_cores"]["count"] >= 50


def test_quick_and_off(tiny: dict[str, Path]) -> None:
    quick = measure_variant(tiny["tflite-float32"], "tflite-float32", _test_set(), MeasurementSpec(protocol="quick"))
    assert quick.latency_count == 200  # no duration floor in quick mode
    assert quick.peak_memory_bytes is None and quick.extra["latency_all_cores"] is None
    assert quick.mcu_ram_bytes is None and quick.extra["float_ops"] == []  # float32: no MCU estimate
    off = measure_variant(tiny["tflite-int8"], "tflite-int8", _test_set(), MeasurementSpec(protocol="off"))
    assert off.latency_p50_ms is None and off.latency_p90_ms is None and off.throughput_per_s is None
    assert off.mcu_ram_bytes == ARENA_ELEMENTS  # read from the graph: no timing needed
    assert off.extra["protocol"] == {"mode": "off"}


def test_keras_latency_is_marked_python_call(tiny: dict[str, Path]) -> None:
    m = MeasurementSpec(protocol="quick", latency_runs=20, warmup_runs=2, throughput_batch=4)
    v = measure_variant(tiny["keras"], "keras", _test_set(), m)
    assert v.latency_p90_ms is not None and v.latency_threads is None and v.init_ms is None
    assert v.extra["protocol"]["runtime"] == "keras" and "Python call" in v.extra["protocol"]["timer"]
    assert v.mcu_ram_bytes is None and "op_profile" not in v.extra
