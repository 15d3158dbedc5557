"""A user's uploaded model as a run's starting point (issue 17, item 4).

The upload was scanned, loaded in safe mode in a sandbox and preflighted when it arrived; a
Keras 3 model got its faithful tf-keras copy then (worker.engine.keras3_copy). Here the job:
- loads the Keras model (tf-keras, safe mode, the Keras v3 format only) and measures it **as it
  came** first: the `uploaded` variant is the baseline on the Pareto chart;
- makes it end in logits: the losses are from_logits and distillation needs logits, so a final
  softmax (or sigmoid) activation is removed from the output layer; argmax, and so accuracy,
  are unchanged (softmax and sigmoid are monotonic);
- fits the dataset to the model's input: a model taking (H, W) gets the dataset's (H, W, 1)
  images without their channel axis;
- for a SavedModel, extracts the archive (checked again) for the TFLite converter;
- for a .tflite file, measures it as it is.
"""

from __future__ import annotations

import dataclasses
import shutil
import zipfile
from pathlib import Path

import numpy as np

from runspec.modelfile import member_names_are_safe, saved_model_root
from runspec.vocabulary import UPLOADED_FORMAT
from worker.engine.contract import ExpectedFailure, UploadedModel, VariantResult
from worker.engine.data import Data
from worker.engine.tfsetup import keras

PROBABILITY_ACTIVATIONS = ("softmax", "sigmoid")


def fit_data(model_input: tuple[int | None, ...], data: Data, what: str) -> Data:
    """`data` with inputs shaped as `model_input` (per example, without the batch axis).

    Equal shapes pass as they are; a dataset of (H, W, 1) images meets a model taking (H, W)
    by dropping the channel axis (a reshape: the same numbers). Raises ExpectedFailure naming
    both shapes otherwise (the API checks the same rule at submit)."""
    want = tuple(model_input)
    have = data.input_shape
    if want == have:
        return data
    if len(want) == len(have) - 1 and have[-1] == 1 and want == have[:-1]:

        def squeeze(x: np.ndarray | None) -> np.ndarray | None:
            return None if x is None else x.reshape(x.shape[0], *want)

        return dataclasses.replace(
            data, x_train=squeeze(data.x_train), x_val=squeeze(data.x_val), x_test=squeeze(data.x_test)
        )
    raise ExpectedFailure(f"{what} takes inputs of shape {want} but the dataset has {have}")


def output_layer(model: keras.Model) -> keras.layers.Layer:
    """The layer that makes the model's (single) output; inside a nested model, that model's."""
    history = getattr(model.outputs[0], "_keras_history", None)
    layer = history[0] if history else model.layers[-1]
    return layer


def logits_model(model: keras.Model, what: str) -> tuple[keras.Model, str | None]:
    """`model` ending in logits, and a note for the run log when it was changed.

    A softmax or sigmoid activation on the output layer is set to linear (in place); a trailing
    Softmax / Activation layer is cut off (a new Model up to its input). Raises ExpectedFailure
    when probabilities come out of a nested model, which is not changed here."""
    layer = output_layer(model)
    if isinstance(layer, keras.Model):
        if _activation(output_layer(layer)) in PROBABILITY_ACTIVATIONS:
            raise ExpectedFailure(
                f"{what} ends in probabilities inside its nested model {layer.name}: save it with logits "
                "(no softmax on the last layer) to train it here"
            )
        return model, None
    name = _activation(layer)
    if name not in PROBABILITY_ACTIVATIONS:
        return model, None
    if hasattr(layer, "activation") and type(layer).__name__ not in ("Activation", "Softmax"):
        layer.activation = keras.activations.linear
        return model, (
            f"{what} ends in {name} on {layer.name}: optiboard trains and exports its logits (the same "
            "layer without the activation); argmax and accuracy are unchanged"
        )
    cut = keras.Model(model.inputs, layer.input, name=model.name)
    return cut, (
        f"{what} ends in a {type(layer).__name__} layer ({layer.name}, {name}): optiboard trains and exports "
        "the logits before it; argmax and accuracy are unchanged"
    )


def _activation(layer: keras.layers.Layer) -> str | None:
    if type(layer).__name__ == "Softmax":
        return "softmax"
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", None) if activation is not None else None


def as_uploaded(result: VariantResult, model: UploadedModel) -> VariantResult:
    """A measured variant relabelled as the uploaded model as it came (format `uploaded`).

    Its size is that of the file measured (a .tflite upload itself; a Keras upload saved again
    in the Keras v3 format by tf-keras, without the optimizer state an uploaded file may carry,
    so sizes compare weights with weights; a SavedModel converted to float32 TFLite); `extra`
    says what it was measured as and the uploaded file's own size in bytes (`uploaded_bytes`)."""
    return dataclasses.replace(
        result,
        format=UPLOADED_FORMAT,
        extra={
            **result.extra,
            "uploaded_model_id": model.id,
            "uploaded_name": model.name,
            "uploaded_format": model.format,
            "uploaded_bytes": model.size_bytes,
            "measured_as": result.format,
        },
    )


def extract_saved_model(archive: Path, dest: Path, max_bytes: int) -> Path:
    """The zipped SavedModel at `archive` extracted under `dest`; returns its folder.

    The upload was bounded and checked when it arrived; the member names and the expanded size
    are checked again here (`max_bytes` in all) right before anything is written. Raises
    ExpectedFailure when the archive is not a SavedModel or breaks a bound."""
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        root = saved_model_root(set(names))
        if root is None or not member_names_are_safe(names):
            raise ExpectedFailure("the uploaded SavedModel archive has no saved_model.pb or an unsafe member name")
        if sum(i.file_size for i in infos) > max_bytes:
            raise ExpectedFailure(f"the uploaded SavedModel expands to more than {max_bytes:,} bytes")
        for info in infos:
            target = dest / info.filename
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
    return dest / root if root else dest
