"""Tiny real models for the upload tests, saved by the real libraries: Keras 3 (`keras`) and
tf-keras (`tf_keras`), 8-16 px inputs, a few layers each. Import after TF_USE_LEGACY_KERAS is set
(worker.engine.tfsetup), as the test modules do."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
import tf_keras


def keras3_cnn(path: Path) -> keras.Model:
    """Functional CNN with Rescaling, Conv2D+BatchNormalization, two branches joined by
    Concatenate, and a softmax head (probabilities at the output)."""
    inputs = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Rescaling(1 / 255, name="rescale")(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    a = keras.layers.Conv2D(4, 1, name="branch_a")(x)
    b = keras.layers.MaxPooling2D(1, name="branch_b")(x)
    x = keras.layers.Concatenate(name="concat")([a, b])
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="probs")(x)
    model = keras.Model(inputs, outputs, name="cnn")
    model.save(path)
    return model


def keras3_nested(path: Path) -> keras.Model:
    """A Functional model holding a Sequential sub-model (logits at the output)."""
    block = keras.Sequential([keras.Input((8,)), keras.layers.Dense(6, activation="relu", name="inner")], name="block")
    inputs = keras.Input((8,), name="features")
    outputs = keras.layers.Dense(3, name="logits")(block(inputs))
    model = keras.Model(inputs, outputs, name="outer")
    model.save(path)
    return model


def keras3_lambda(path: Path, canary: Path) -> keras.Model:
    """A model whose Lambda layer creates `canary` whenever it runs (also once while it is
    built here: the caller removes the canary after saving)."""
    target = str(canary)
    inputs = keras.Input((4,))
    x = keras.layers.Dense(4, name="dense")(inputs)
    x = keras.layers.Lambda(lambda t: (open(target, "w").close(), t)[1], name="evil")(x)  # noqa: SIM115
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(x))
    model.save(path)
    model.save(path.with_suffix(".h5"))
    canary.unlink(missing_ok=True)
    return model


@keras.saving.register_keras_serializable(package="Hostile")
class Subclassed(keras.Model):
    def __init__(self, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(2)

    def call(self, x):  # type: ignore[no-untyped-def]
        return self.dense(x)


def keras3_subclassed(path: Path) -> keras.Model:
    model = Subclassed()
    model(np.zeros((1, 4), np.float32))
    model.save(path)
    return model


def tf_keras_mlp(path: Path) -> tf_keras.Model:
    """A tf-keras Sequential MLP with logits at the output."""
    model = tf_keras.Sequential(
        [
            tf_keras.Input((12,)),
            tf_keras.layers.Dense(8, activation="relu", name="hidden"),
            tf_keras.layers.Dropout(0.1, name="drop"),
            tf_keras.layers.Dense(4, name="logits"),
        ],
        name="mlp",
    )
    model.save(path, save_format="keras_v3")
    return model


def tflite_bytes(model: tf_keras.Model) -> bytes:
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()
