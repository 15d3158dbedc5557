"""Imported first by every engine module that touches TensorFlow.

tfmot 0.8 works only with Keras 2, so TF_USE_LEGACY_KERAS must be set before TensorFlow is
imported anywhere in the process; doing it in one module keeps that order in one place.
"""

from __future__ import annotations

import logging
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # C++ INFO/WARNING lines flood worker logs

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

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


def release_memory() -> None:
    """Drop the finished job's graphs and models before the next job in a warm process."""
    import gc

    keras.backend.clear_session()
    gc.collect()


__all__ = ["has_gpu", "keras", "release_memory", "seed_everything", "tf"]
