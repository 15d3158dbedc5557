"""TFLite conversion: float32, dynamic range, float16 and full-integer int8."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tensorflow as tf

from runspec.vocabulary import EXPORT_FORMATS
from worker.engine.native_output import CONVERTER_CHATTER, quietly
from worker.engine.tfsetup import keras


def representative_samples(x: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A fixed random subset of the training inputs for int8 calibration."""
    idx = np.random.default_rng(seed).permutation(len(x))[: min(n, len(x))]
    return x[np.sort(idx)]


def to_tflite(
    model: keras.Model | Path,
    fmt: str,
    path: Path,
    *,
    representative: np.ndarray | None = None,
    from_qat: bool = False,
) -> Path:
    """Convert `model` (a Keras model, or the folder of a SavedModel) to `fmt` and write it to
    `path`.

    int8 is full-integer: int8 weights and activations, int8 input and output tensors
    (the measurement quantizes inputs with the input tensor's scale and zero point).
    A QAT model carries its own ranges, so it needs no representative data.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}")
    if isinstance(model, Path):
        converter = tf.lite.TFLiteConverter.from_saved_model(str(model))
    else:
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if fmt == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif fmt == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif fmt == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if not from_qat:
            if representative is None or not len(representative):
                raise ValueError("int8 export needs representative samples")
            samples = representative.astype(np.float32)

            def gen() -> Iterator[list[np.ndarray]]:
                for i in range(len(samples)):
                    yield [samples[i : i + 1]]

            converter.representative_dataset = gen
            # integer-only kernels; a QAT model gets them from its fake-quant ranges
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    path.write_bytes(quietly(converter.convert, CONVERTER_CHATTER))
    return path
