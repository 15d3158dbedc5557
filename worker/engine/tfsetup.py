"""Imported first by every engine module that touches TensorFlow.

tfmot 0.8 works only with Keras 2, so TF_USE_LEGACY_KERAS must be set before TensorFlow is
imported anywhere in the process; doing it in one module keeps that order in one place.
"""

from __future__ import annotations

import logging
import os
import warnings

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # C++ INFO/WARNING lines flood worker logs
# oneDNN kernels for convolutions, pooling and their gradients. TensorFlow turns them on by
# itself only on CPUs with AVX-512 VNNI/BF16 or AMX; on the AVX2 EPYC of
# docs/lab-notes/pipeline-speed-profile.md they cut the seed CNN's CPU time per 28x28 image by 12-17 %
# (MaxPoolGrad ~7x, conv2's gradients ~2x cheaper) but cost 15-30 % more on tiny 8x8 inputs (digits).
# TF_ENABLE_ONEDNN_OPTS=0 in the worker's environment turns them off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from worker.engine.native_output import IMPORT_CHATTER, quietly  # noqa: E402

# The import prints absl's preamble and INFO lines past Python (native_output): dropped here.
quietly(lambda: __import__("tf_keras"), IMPORT_CHATTER)  # imports TensorFlow too
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402
from tensorflow.python.framework import ops as _tf_ops  # noqa: E402

# Warnings about what the libraries do inside, not about the run (issue 16: one log line per
# event): tfmot clones QAT models through a temporary .h5 file (quantization/keras/utils.py),
# and the converter notes that an int8 model's input statistics come from its own calibration.
# Our own saves name the Keras v3 format (job.save_keras_model), which never warns.
warnings.filterwarnings("ignore", message="You are saving your model as an HDF5 file", category=UserWarning)
warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected", category=UserWarning)

tf.get_logger().setLevel(logging.ERROR)
logging.getLogger("absl").setLevel(logging.ERROR)

if tf.keras.__name__.split(".")[0] != "tf_keras":  # pragma: no cover - misordered import
    raise RuntimeError(
        "TensorFlow was imported before worker.engine.tfsetup: tf.keras is Keras 3, "
        "tensorflow-model-optimization needs Keras 2 (import worker.engine.tfsetup first)"
    )


def seed_everything(seed: int) -> None:
    """Python, numpy and TensorFlow seeds in one call."""
    keras.utils.set_random_seed(seed)


def has_gpu() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


# Gradients registered by the libraries at import time; everything registered later under
# `CustomGradient-<uid>` belongs to a function traced by some job.
_IMPORT_TIME_GRADIENTS = frozenset(_tf_ops.gradient_registry.list())
_CUSTOM_GRADIENT_PREFIX = "CustomGradient-"


def _drop_traced_custom_gradients() -> int:
    """Forget the gradient functions that `tf.custom_gradient` registered while tracing.

    Each trace of a function using `tf.custom_gradient` in graph mode (the optimizer's
    `aggregate_gradients` → `distribute_lib.all_reduce` in every `train_function`) registers
    its gradient in TensorFlow's global gradient registry under a fresh name, and nothing ever
    removes it. The entry's closure holds the traced graph, so every `train_function` of every
    job stayed reachable: ~9.5 MB and ~12,500 Python objects per job in a warm process. The
    entries are needed only while their graph is traced or differentiated; after a job no
    graph of it is used again. TensorFlow has no public way to unregister, hence `_registry`.
    """
    registry = _tf_ops.gradient_registry._registry
    stale = [
        name for name in registry if name.startswith(_CUSTOM_GRADIENT_PREFIX) and name not in _IMPORT_TIME_GRADIENTS
    ]
    for name in stale:
        del registry[name]
    return len(stale)


def _trim_malloc_heap() -> None:
    """Hand the heap pages freed by the job back to the OS (glibc keeps them otherwise:
    ~30 MB of a tiny job's idle RSS, more after a large one). No-op off glibc."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # pragma: no cover - musl, macOS
        pass


def release_memory() -> None:
    """Drop the finished job's graphs and models before the next job in a warm process.

    Only call it between jobs: models and traced functions of the finished job must not be
    trained again afterwards (their custom gradients are forgotten).
    """
    import gc

    _drop_traced_custom_gradients()
    keras.backend.clear_session()
    gc.collect()
    _trim_malloc_heap()


__all__ = ["has_gpu", "keras", "release_memory", "seed_everything", "tf"]
