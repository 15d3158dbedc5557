"""The zoo's tf-keras models: a flat Functional model with a new logits head, ImageNet weights
read from the Keras cache only (a fabricated cache file shows they are loaded), a clear error
naming the missing file and folder, and the table of parameter counts the API uses."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from runspec.spec import ModelSpec, RegularizationSpec  # noqa: E402
from runspec.zoo import ZOO, imagenet_weights_file, zoo_params  # noqa: E402
from worker.engine.contract import WeightsUnavailable  # noqa: E402
from worker.engine.models import build_model  # noqa: E402
from worker.engine.tfsetup import keras  # noqa: E402

SPEC = ModelSpec(architecture="mobilenet_v2", width_multiplier=0.35, input_size=32, weights="imagenet")


def _kernel(model: keras.Model) -> np.ndarray:
    return model.get_layer("Conv1").kernel.numpy()


def test_imagenet_weights_are_read_from_the_keras_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    # the cache file Keras's get_file would have written: the no-top model's weights
    keras.utils.set_random_seed(1)
    donor = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3), alpha=0.35)
    (tmp_path / "models").mkdir()
    donor.save_weights(str(tmp_path / "models" / imagenet_weights_file("mobilenet_v2", 0.35, 32)))

    keras.utils.set_random_seed(2)
    fresh = build_model(SPEC.model_copy(update={"weights": "none"}), (8, 8, 1), 10, RegularizationSpec())
    keras.utils.set_random_seed(2)
    loaded = build_model(SPEC, (8, 8, 1), 10, RegularizationSpec(dropout=0.2))
    assert not np.allclose(_kernel(fresh), _kernel(donor))
    np.testing.assert_array_equal(_kernel(loaded), _kernel(donor))
    # flat (no model inside the model), grayscale resized and repeated to RGB, a float32 logits head
    assert not any(isinstance(layer, keras.Model) for layer in loaded.layers)
    assert loaded.get_layer("resize").output_shape == (None, 32, 32, 1)
    assert loaded.get_layer("to_rgb").output_shape == (None, 32, 32, 3)
    assert loaded.get_layer("dropout").rate == 0.2
    logits = loaded.get_layer("logits")
    assert logits.output_shape == (None, 10) and logits.dtype == "float32" and logits.activation.__name__ == "linear"
    # random weights read grayscale as it is (one input channel)
    assert fresh.get_layer("Conv1").kernel.shape[2] == 1


def test_missing_weights_fail_naming_the_file_and_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty"))
    with pytest.raises(WeightsUnavailable) as caught:
        build_model(SPEC, (8, 8, 1), 10, RegularizationSpec())
    message = str(caught.value)
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5" not in message  # the 32 px rows
    assert "missing mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5" in message
    assert f"in {tmp_path / 'empty' / 'models'}" in message
    assert not (tmp_path / "empty").exists()  # nothing was fetched or created


@pytest.mark.parametrize("architecture", ["mobilenet_v3_small", "efficientnet_b0"])
def test_the_parameter_table_matches_keras(architecture: str) -> None:
    model = build_model(ModelSpec(architecture=architecture, input_size=32), (32, 32, 3), 10, RegularizationSpec())
    assert model.count_params() == zoo_params(architecture, 1.0, 3, 10)
    assert model.get_layer("gap").output_shape == (None, ZOO[architecture].features)


def test_l2_reaches_every_kernel_of_the_backbone() -> None:
    spec = ModelSpec(architecture="mobilenet_v3_small", width_multiplier=0.35, input_size=32)
    model = build_model(spec, (8, 8, 1), 10, RegularizationSpec(l2=1e-4))
    kernels = [layer for layer in model.layers if hasattr(layer, "kernel") or hasattr(layer, "depthwise_kernel")]
    assert len(model.losses) == len(kernels) > 20
