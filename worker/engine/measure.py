"""The one measurement harness: every variant, Keras or TFLite, goes through `measure_variant`.

Quality (accuracy, macro precision/recall/F1, confusion matrix) on the test split, size of the
file as written (raw and gzip), parameter counts, batch throughput, the hardware fingerprint and
the latency protocol (docs/techniques.md, "Latency protocol"). TFLite files run in the LiteRT
interpreter; nothing is assumed from the Keras model they came from:
- latency distribution at 1 thread (the headline p90) and at all the worker's cores, init and
  first-inference time, XNNPACK's share of ops: worker.engine.lite_protocol;
- peak memory in a fresh process: worker.engine.footprint;
- ops by type with MACs, ops left in float, microcontroller RAM/flash: worker.engine.graph_cost.
A Keras variant's latency is the wall time of a Python call of its tf.function on TensorFlow's
own thread pools (`extra.protocol.runtime` "keras"): a different runtime, never ratioed against
TFLite figures.

Parameter counts: a Keras variant counts the weights of the loaded file. A TFLite variant
reports the parameter and nonzero counts of the Keras model it was converted from (the
converter neither adds nor drops weights; int8 maps zeros to zero), and `extra` holds what is
read from the .tflite itself: its weight tensors (constant tensors of rank ≥ 2), their types,
zero fraction and distinct values, and the count of int8 tensors.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from ai_edge_litert import schema_py_generated as fb
from ai_edge_litert.interpreter import Interpreter

from runspec.spec import MeasurementSpec
from worker.engine.contract import VariantResult
from worker.engine.footprint import peak_memory
from worker.engine.graph_cost import Graph
from worker.engine.hardware import fingerprint
from worker.engine.latency import Guard, latency_fields, measure_guarded, time_calls
from worker.engine.lite_protocol import measure_lite, quantize_input
from worker.engine.native_output import INTERPRETER_CHATTER, quietly
from worker.engine.tfsetup import keras

EVAL_BATCH = 256


# --- runners ---------------------------------------------------------------------------


class KerasRunner:
    def __init__(self, path: Path):
        self.model = keras.models.load_model(path, safe_mode=True, compile=False)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict(x, batch_size=EVAL_BATCH, verbose=0)

    def single(self, x1: np.ndarray):
        fn = tf.function(self.model)
        t = tf.constant(x1)
        fn(t)  # trace outside the timed loop
        return lambda: fn(t).numpy()


class LiteRunner:
    def __init__(self, path: Path, threads: int = 1):
        self.path = str(path)
        self.interp = Interpreter(model_path=self.path, num_threads=threads)
        self.inp = self.interp.get_input_details()[0]
        self.out = self.interp.get_output_details()[0]

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        return quantize_input(x, self.inp)

    def _dequantize(self, y: np.ndarray) -> np.ndarray:
        if self.out["dtype"] in (np.int8, np.uint8):
            scale, zero = self.out["quantization"]
            return (y.astype(np.float32) - zero) * scale
        return y.astype(np.float32)

    def _resize(self, n: int) -> None:
        self.interp.resize_tensor_input(self.inp["index"], [n, *self.inp["shape"][1:]])
        quietly(self.interp.allocate_tensors, INTERPRETER_CHATTER)

    def predict(self, x: np.ndarray) -> np.ndarray:
        outs, current = [], None
        for i in range(0, len(x), EVAL_BATCH):
            chunk = x[i : i + EVAL_BATCH]
            if len(chunk) != current:
                self._resize(len(chunk))
                current = len(chunk)
            self.interp.set_tensor(self.inp["index"], self._quantize(chunk))
            self.interp.invoke()
            outs.append(self._dequantize(self.interp.get_tensor(self.out["index"])))
        return np.concatenate(outs)

    def single(self, x1: np.ndarray):
        self._resize(len(x1))
        self.interp.set_tensor(self.inp["index"], self._quantize(x1))
        return self.interp.invoke


# --- quality ---------------------------------------------------------------------------


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: int) -> dict[str, Any]:
    """Accuracy, macro precision/recall/F1 and the confusion matrix (rows true, columns predicted).

    y_true, y_pred: (N,) integer class indices in [0, classes). The macro averages are taken over
    the classes that occur in y_true, with 0 for a ratio whose denominator is 0: scikit-learn's
    `precision_recall_fscore_support(y_true, y_pred, labels=np.unique(y_true), average="macro",
    zero_division=0)`. A class absent from the test split has no recall to measure; averaging
    its undefined 0 in (as `labels=range(classes)` would) lowers every macro figure by a factor
    of present/classes, whatever the model does. Predictions of an absent class still count:
    they are misses of the true classes' recall (and the confusion matrix shows them).
    Also returns `per_class` (precision, recall, f1, support per class; None where undefined)
    and `classes_absent_from_test`.
    """
    cm = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(cm, (y_true.astype(np.int64), y_pred.astype(np.int64)), 1)
    tp = np.diag(cm).astype(np.float64)
    pred_pos, true_pos = cm.sum(axis=0), cm.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(pred_pos > 0, tp / pred_pos, 0.0)
        recall = np.where(true_pos > 0, tp / true_pos, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = true_pos > 0

    def macro(v: np.ndarray) -> float:
        return float(v[present].mean()) if present.any() else 0.0

    return {
        "accuracy": float(tp.sum() / max(cm.sum(), 1)),
        "precision": macro(precision),
        "recall": macro(recall),
        "f1": macro(f1),
        "confusion": cm.tolist(),
        "per_class": {
            "precision": [float(p) if n else None for p, n in zip(precision, pred_pos, strict=True)],
            "recall": [float(r) if n else None for r, n in zip(recall, true_pos, strict=True)],
            "f1": [float(f) if n else None for f, n in zip(f1, true_pos, strict=True)],
            "support": [int(n) for n in true_pos],
        },
        "classes_absent_from_test": [int(i) for i in np.flatnonzero(~present)],
    }


# --- speed -----------------------------------------------------------------------------


def _throughput(runner: KerasRunner | LiteRunner, x: np.ndarray, m: MeasurementSpec) -> float:
    """Examples per second at batch `m.throughput_batch` (median of max(5, latency_runs/10) calls)."""
    batch = np.resize(x, (m.throughput_batch, *x.shape[1:]))
    times = time_calls(runner.single(batch), runs=max(5, m.latency_runs // 10), warmup=min(m.warmup_runs, 5))
    return float(m.throughput_batch / (np.median(times) / 1e3))


def _keras_latency(runner: KerasRunner, x1: np.ndarray, m: MeasurementSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """Python-call latency of the Keras model (batch 1): the same guard, no duration floor."""
    guard = Guard(m.max_cv, m.max_p99_over_p50)
    g = measure_guarded(
        runner.single(x1),
        runs=m.latency_runs,
        warmup=m.warmup_runs,
        min_duration_s=0.0,
        guard=guard,
        remeasure=m.protocol == "full",
    )
    fields = {
        **latency_fields(g),
        "load_avg_1m": os.getloadavg()[0],
    }
    protocol = {
        "mode": m.protocol,
        "runtime": "keras",
        "warmup_runs": m.warmup_runs,
        "runs": m.latency_runs,
        "min_duration_s": 0.0,
        "threads": None,
        "delegate": None,
        "timer": "time.perf_counter_ns around a Python call of the tf.function (TensorFlow's thread pools)",
        "batch": 1,
        "guard": {"max_cv": guard.max_cv, "max_p99_over_p50": guard.max_p99_over_p50},
        "attempts": g.attempts,
        "p99_over_p50": g.stats.p99_over_p50,
        "duration_s": g.stats.duration_s,
    }
    return fields, {"protocol": protocol}


def _lite_costs(path: Path, fmt: str, data: bytes, m: MeasurementSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """Graph costs of a TFLite file (always) and its fresh-process peak memory (full protocol)."""
    graph = Graph(data)
    int8 = fmt == "tflite-int8"
    fields: dict[str, Any] = {
        "mcu_ram_bytes": graph.arena_bytes() if int8 else None,
        "mcu_flash_bytes": len(data) if int8 else None,
    }
    extra: dict[str, Any] = {
        "op_profile": graph.op_profile(),
        "total_macs": graph.total_macs(),
        "float_ops": graph.float_ops() if int8 else [],
    }
    if m.protocol == "full":
        memory = peak_memory(path)
        fields["peak_memory_bytes"] = memory.pop("peak_memory_bytes")
        extra["memory"] = memory
    return fields, extra


# --- weights ---------------------------------------------------------------------------


def _kernels(model: keras.Model) -> dict[str, np.ndarray]:
    out = {}
    for layer in model.layers:
        for w in layer.weights:
            if "kernel" in w.name:  # kernel and depthwise_kernel: what pruning/clustering act on
                out[w.name] = w.numpy()
    return out


def keras_weight_stats(model: keras.Model) -> dict[str, Any]:
    weights = [w.numpy() for w in model.weights]
    kernels = _kernels(model)
    k_total = sum(k.size for k in kernels.values())
    k_zero = sum(int((k == 0).sum()) for k in kernels.values())
    distinct = {name: int(np.unique(k).size) for name, k in kernels.items()}
    return {
        "params": int(sum(w.size for w in weights)),
        "nonzero_params": int(sum(np.count_nonzero(w) for w in weights)),
        "extra": {
            "kernel_sparsity": k_zero / max(k_total, 1),
            "distinct_values_per_kernel": distinct,
            "max_distinct_values_per_kernel": max(distinct.values(), default=0),
        },
    }


_FB_DTYPES = {
    fb.TensorType.FLOAT32: np.float32,
    fb.TensorType.FLOAT16: np.float16,
    fb.TensorType.INT32: np.int32,
    fb.TensorType.UINT8: np.uint8,
    fb.TensorType.INT64: np.int64,
    fb.TensorType.INT8: np.int8,
    fb.TensorType.INT16: np.int16,
}
_FB_NAMES = {v: k.lower() for k, v in vars(fb.TensorType).items() if not k.startswith("_")}


def tflite_weight_stats(path: Path, interp: Interpreter) -> dict[str, Any]:
    """Statistics read from the .tflite file: weight tensors are its constant tensors of
    rank ≥ 2 (kernels; biases and shape constants are rank 1)."""
    model = fb.Model.GetRootAs(path.read_bytes(), 0)
    types: dict[str, int] = {}
    total = zeros = 0
    max_distinct = 0
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for i in range(graph.TensorsLength()):
            t = graph.Tensors(i)
            buf = model.Buffers(t.Buffer())
            if buf is None or buf.DataLength() == 0 or t.ShapeLength() < 2:
                continue
            dtype = _FB_DTYPES.get(t.Type())
            name = _FB_NAMES.get(t.Type(), str(t.Type()))
            types[name] = types.get(name, 0) + 1
            if dtype is None:
                continue
            data = buf.DataAsNumpy().view(dtype)
            total += data.size
            zeros += int((data == 0).sum())
            max_distinct = max(max_distinct, int(np.unique(data).size))
    details = interp.get_tensor_details()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    return {
        "tflite_weight_tensors": types,
        "tflite_weight_sparsity": zeros / max(total, 1),
        "tflite_max_distinct_values_per_weight_tensor": max_distinct,
        "int8_tensors": sum(1 for d in details if d["dtype"] == np.int8),
        "tensors": len(details),
        "input_dtype": np.dtype(inp["dtype"]).name,
        "output_dtype": np.dtype(out["dtype"]).name,
    }


# --- the harness -----------------------------------------------------------------------


@dataclass(frozen=True)
class TestSet:
    x: np.ndarray
    y: np.ndarray
    classes: int


def measure_variant(
    path: Path,
    fmt: str,
    test: TestSet,
    measurement: MeasurementSpec,
    *,
    source_model: keras.Model | None = None,
    extra: dict[str, Any] | None = None,
) -> VariantResult:
    """Measure the model file at `path` (format `keras` or `tflite-*`) on the test split.

    `source_model`: for TFLite variants, the Keras model that was converted (for the
    parameter counts, see the module docstring)."""
    is_tflite = fmt.startswith("tflite")
    runner: KerasRunner | LiteRunner = LiteRunner(path) if is_tflite else KerasRunner(path)

    logits = runner.predict(test.x)
    quality = classification_metrics(test.y, np.argmax(logits, axis=-1), test.classes)

    if is_tflite:
        assert isinstance(runner, LiteRunner)
        file_stats = tflite_weight_stats(path, runner.interp)
        counts = (
            keras_weight_stats(source_model)
            if source_model is not None
            else {"params": 0, "nonzero_params": 0, "extra": {}}
        )
    else:
        assert isinstance(runner, KerasRunner)
        file_stats = {}
        counts = keras_weight_stats(runner.model)

    data = path.read_bytes()
    timed: dict[str, Any] = {}
    timed_extra: dict[str, Any] = {"protocol": {"mode": "off"}}
    if measurement.protocol != "off":
        if is_tflite:
            timed, timed_extra = measure_lite(path, test.x[:1], measurement)
        else:
            assert isinstance(runner, KerasRunner)
            timed, timed_extra = _keras_latency(runner, test.x[:1], measurement)
        timed["throughput_per_s"] = _throughput(runner, test.x, measurement)
    costs, costs_extra = _lite_costs(path, fmt, data, measurement) if is_tflite else ({}, {})

    return VariantResult(
        format=fmt,
        path=path,
        accuracy=quality["accuracy"],
        precision=quality["precision"],
        recall=quality["recall"],
        f1=quality["f1"],
        confusion=quality["confusion"],
        size_bytes=len(data),
        gzip_bytes=len(gzip.compress(data, compresslevel=9, mtime=0)),
        params=counts["params"],
        nonzero_params=counts["nonzero_params"],
        **timed,
        **costs,
        hardware={**fingerprint(), "threads": 1 if is_tflite else "tensorflow-default"},
        extra={
            **counts["extra"],
            **file_stats,
            **timed_extra,
            **costs_extra,
            "latency_runs": measurement.latency_runs,
            "warmup_runs": measurement.warmup_runs,
            "throughput_batch": measurement.throughput_batch,
            "test_examples": int(len(test.y)),
            "per_class": quality["per_class"],
            "classes_absent_from_test": quality["classes_absent_from_test"],
            **(extra or {}),
        },
    )
