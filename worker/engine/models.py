"""The built-in architectures as tf_keras models; widths come from runspec.architectures.

Every model ends in logits (no softmax): the losses use from_logits=True, distillation needs
the logits, and the measurement takes the argmax.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from runspec import architectures as arch
from runspec.spec import ModelSpec, RegularizationSpec
from runspec.zoo import ZOO
from worker.engine.contract import ModelFileRefused
from worker.engine.data import Data
from worker.engine.tfsetup import keras
from worker.engine.zoo import build_zoo_model


def _regularizer(reg: RegularizationSpec) -> keras.regularizers.Regularizer | None:
    if reg.l1 == 0 and reg.l2 == 0:
        return None
    return keras.regularizers.L1L2(l1=reg.l1, l2=reg.l2)


def build_model(
    spec: ModelSpec,
    input_shape: tuple[int, ...],
    classes: int,
    reg: RegularizationSpec,
    *,
    name: str | None = None,
) -> keras.Model:
    """A fresh model of the spec's architecture; L1/L2 act on kernels, dropout before the
    classifier. A zoo architecture is built by worker.engine.zoo.build_zoo_model."""
    if spec.architecture in ZOO:
        return build_zoo_model(spec, input_shape, classes, reg, name=name)
    kr = _regularizer(reg)
    w = spec.width_multiplier
    inputs = keras.Input(shape=input_shape, name="input")
    x = inputs
    if spec.architecture == "seed_cnn":
        if len(input_shape) != 3:
            raise ValueError(f"seed_cnn needs image inputs (H, W, C), got {input_shape}")
        pad = arch.seed_cnn_padding(input_shape)
        for i, f in enumerate(arch.SEED_CNN_FILTERS):
            x = keras.layers.Conv2D(
                arch.scaled(f, w), 3, padding=pad, activation="relu", kernel_regularizer=kr, name=f"conv{i + 1}"
            )(x)
            if i < 2:
                x = keras.layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        x = keras.layers.Dense(
            arch.scaled(arch.SEED_CNN_DENSE, w), activation="relu", kernel_regularizer=kr, name="dense"
        )(x)
    elif spec.architecture == "mlp":
        x = keras.layers.Flatten(name="flatten")(x)
        for i, u in enumerate(arch.MLP_UNITS):
            x = keras.layers.Dense(arch.scaled(u, w), activation="relu", kernel_regularizer=kr, name=f"dense{i + 1}")(x)
    elif spec.architecture == "ds_cnn":
        if len(input_shape) != 3:
            raise ValueError(f"ds_cnn needs image inputs (H, W, C), got {input_shape}")
        x = keras.layers.Conv2D(
            arch.scaled(arch.DS_CNN_STEM, w), 3, padding="same", activation="relu", kernel_regularizer=kr, name="stem"
        )(x)
        for i, out in enumerate(arch.DS_CNN_BLOCKS):
            x = keras.layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
            x = keras.layers.DepthwiseConv2D(
                3, padding="same", activation="relu", depthwise_regularizer=kr, name=f"dw{i + 1}"
            )(x)
            x = keras.layers.Conv2D(
                arch.scaled(out, w), 1, activation="relu", kernel_regularizer=kr, name=f"pw{i + 1}"
            )(x)
        x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    else:  # pragma: no cover - the spec's Literal forbids it
        raise ValueError(f"unknown architecture {spec.architecture!r}")
    if reg.dropout > 0:
        x = keras.layers.Dropout(reg.dropout, name="dropout")(x)
    # The classifier stays float32 under mixed precision: softmax/CE in float16 is unstable.
    outputs = keras.layers.Dense(classes, kernel_regularizer=kr, dtype="float32", name="logits")(x)
    return keras.Model(inputs, outputs, name=name or spec.architecture)


def save_keras_model(model: keras.Model, path: Path) -> None:
    """Save in the Keras v3 format (a zip), whatever thread this runs on.

    tf-keras chooses the format of a `.keras` path from a thread-local flag that its own
    save/load set back to "off" on a thread where it was never set (saving_lib.save_model and
    load_model restore `getattr(flag, "value", False)`), so on the job thread every save after
    the first load wrote legacy HDF5 under a `.keras` name (with a warning each time). Naming
    the format keeps the file what its name says, and loadable in safe mode.
    """
    model.save(path, save_format="keras_v3")


def load_keras_model(path: Path, what: str) -> keras.Model:
    """A finished run's model (initial model, teacher, optimize parent), uncompiled.

    Only the Keras v3 format, in safe mode: never unpickle code from an artifact (safe mode
    applies to v3 files only, so an HDF5 file is refused whatever its name). Raises
    ModelFileRefused (a ValueError) naming `what` for another file type, and what Keras raises
    for a bad file."""
    path = Path(path)
    if path.suffix != ".keras" or not zipfile.is_zipfile(path):
        raise ModelFileRefused(
            f"{what} is not a Keras v3 .keras file ({path.name}; runs before issue 16 saved HDF5 under "
            "that name on the job thread): only Keras v3 files are loaded, in safe mode; retry that run "
            "to make a Keras v3 model"
        )
    return keras.models.load_model(path, safe_mode=True, compile=False)


def check_input(model: keras.Model, data: Data, what: str) -> None:
    """Raises ValueError naming `what` unless `model` takes the dataset's per-example input
    shape and has one output (logit) per class."""
    expected = tuple(model.input_shape[1:])
    if expected != data.input_shape:
        raise ValueError(f"{what} expects inputs of shape {expected} but the dataset has {data.input_shape}")
    if model.output_shape[-1] != data.classes:
        raise ValueError(f"{what} has {model.output_shape[-1]} outputs but the dataset has {data.classes} classes")
