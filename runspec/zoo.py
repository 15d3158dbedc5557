"""The model zoo: `keras.applications` architectures beside the built-in ones, as data only.

Standard library only (the API imports it; it has no TensorFlow). The worker builds each with
`tf_keras.applications.<application>(include_top=False, weights=None)` and a new classifier head
(`worker.engine.zoo`); ImageNet weights are read from the Keras cache only, under the file name
Keras's own `get_file` would use for the no-top weights (tf_keras/src/applications/
mobilenet_v2.py, mobilenet_v3.py, efficientnet.py, resnet.py), never downloaded at run time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ZooArchitecture:
    """One `keras.applications` architecture.

    `application`: the function in `tf_keras.applications`; `has_alpha`: its width multiplier
    is MobileNet's `alpha`; `imagenet_alphas`: the alphas Keras publishes ImageNet weights for
    (empty: the architecture has no width multiplier); `min_input_size`: the smallest input side
    in pixels Keras accepts; `params`: total parameters without the top (include_top=False) at
    alpha 1.0 on 3-channel inputs, by `count_params()`; `features`: channels of the last
    feature map (what the new classifier head reads), at alpha 1.0.
    """

    application: str
    has_alpha: bool
    imagenet_alphas: tuple[float, ...]
    min_input_size: int
    params: int
    features: int


ZOO: dict[str, ZooArchitecture] = {
    "mobilenet_v2": ZooArchitecture("MobileNetV2", True, (0.35, 0.5, 0.75, 1.0, 1.3, 1.4), 32, 2_257_984, 1280),
    "mobilenet_v3_small": ZooArchitecture("MobileNetV3Small", True, (0.75, 1.0), 32, 939_120, 576),
    "efficientnet_b0": ZooArchitecture("EfficientNetB0", False, (), 32, 4_049_571, 1280),
    "resnet50": ZooArchitecture("ResNet50", False, (), 32, 23_587_712, 2048),
}
ZOO_ARCHITECTURES = tuple(ZOO)
# Input sides MobileNetV2's ImageNet weights are published for; another size loads the 224 file
# (mobilenet_v2.py: "Weights for input shape (224, 224) will be loaded as the default").
MOBILENET_V2_SIZES = (96, 128, 160, 192, 224)


def keras_models_dir() -> Path:
    """The folder Keras caches application weights in: $KERAS_HOME/models or ~/.keras/models."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def imagenet_weights_file(architecture: str, alpha: float, input_size: int) -> str:
    """The file name of the no-top ImageNet weights Keras's get_file would cache for this
    architecture, alpha and input side (pixels). Raises KeyError for an architecture not in ZOO."""
    zoo = ZOO[architecture]
    if architecture == "mobilenet_v2":
        rows = input_size if input_size in MOBILENET_V2_SIZES else 224
        return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}_no_top.h5"
    if architecture == "mobilenet_v3_small":
        return f"weights_mobilenet_v3_small_224_{float(alpha)}_float_no_top_v2.h5"
    if architecture == "efficientnet_b0":
        return "efficientnetb0_notop.h5"
    if architecture == "resnet50":
        return "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    raise KeyError(f"no ImageNet weights file is known for {zoo.application}")  # pragma: no cover


def zoo_params(architecture: str, alpha: float, channels: int, classes: int) -> int | None:
    """Total parameters of a zoo model with its new head (GAP → Dense(classes)) on inputs of
    `channels` channels, or None when the table cannot say (alpha other than 1.0, or fewer than 3
    channels, whose first kernel is smaller): callers then skip arithmetic they would do."""
    zoo = ZOO[architecture]
    if alpha != 1.0 or channels != 3:
        return None
    return zoo.params + zoo.features * classes + classes
