"""The model zoo (runspec.zoo) as tf-keras models: a `tf_keras.applications` backbone with
`include_top=False` and a new classifier head for the dataset's classes.

One flat Functional model (no model inside a model: tfmot's quantize_annotate_model refuses
nested models): Input → Resizing to `input_size` (when the images are of another size) →
Concatenate to 3 channels (grayscale with ImageNet weights) → the backbone, built on that tensor
(`input_tensor`) → GlobalAveragePooling2D → Dropout (when asked) → Dense(classes) logits in float32.

ImageNet weights come from the Keras cache only: the backbone is built with `weights=None` and
its no-top weights file (the name Keras's get_file would use, runspec.zoo) is loaded with
`load_weights`; a missing file raises WeightsUnavailable naming the file and folder. Nothing is
ever downloaded at run time. The backbones keep their own input preprocessing as Keras builds it
(MobileNetV3 and EfficientNet rescale 0-255 inputs inside; MobileNetV2 and ResNet50 expect the
caller's `preprocess_input`): ImageNet features transfer best with `dataset.normalize: none` on
the first two.
"""

from __future__ import annotations

from runspec.spec import ModelSpec, RegularizationSpec
from runspec.zoo import ZOO, imagenet_weights_file, keras_models_dir
from worker.engine.contract import WeightsUnavailable
from worker.engine.tfsetup import keras


def build_zoo_model(
    spec: ModelSpec,
    input_shape: tuple[int, ...],
    classes: int,
    reg: RegularizationSpec,
    *,
    name: str | None = None,
) -> keras.Model:
    """The zoo model of `spec` for images of `input_shape` (H, W, C) and `classes` logits.

    Raises ValueError for inputs that are not images (or not 1 or 3 channels with ImageNet
    weights) and WeightsUnavailable when the ImageNet weights file is not in the Keras cache."""
    zoo = ZOO[spec.architecture]
    if len(input_shape) != 3:
        raise ValueError(f"{spec.architecture} needs image inputs (H, W, C), got {input_shape}")
    size, channels = spec.input_size, input_shape[2]
    imagenet = spec.weights == "imagenet"
    if imagenet and channels not in (1, 3):
        raise ValueError(f"ImageNet weights read 3 channels (grayscale is repeated), the data has {channels}")
    weights_path = None
    if imagenet:
        weights_path = keras_models_dir() / imagenet_weights_file(spec.architecture, spec.width_multiplier, size)
        if not weights_path.is_file():
            raise WeightsUnavailable(
                f"ImageNet weights for {spec.architecture} are not in the Keras cache: missing {weights_path.name} "
                f"in {weights_path.parent} (optiboard never downloads at run time: copy the file Keras's get_file "
                "would fetch there, or set KERAS_HOME)"
            )
    inputs = keras.Input(shape=input_shape, name="input")
    x = inputs
    if tuple(input_shape[:2]) != (size, size):
        x = keras.layers.Resizing(size, size, name="resize")(x)
    if imagenet and channels == 1:
        x = keras.layers.Concatenate(axis=-1, name="to_rgb")([x, x, x])
    options = {"alpha": spec.width_multiplier} if zoo.has_alpha else {}
    application = getattr(keras.applications, zoo.application)
    backbone = application(include_top=False, weights=None, input_tensor=x, **options)
    if weights_path is not None:
        backbone.load_weights(str(weights_path))
    x = keras.layers.GlobalAveragePooling2D(name="gap")(backbone.output)
    if reg.dropout > 0:
        x = keras.layers.Dropout(reg.dropout, name="dropout")(x)
    # The classifier stays float32 under mixed precision: softmax/CE in float16 is unstable.
    outputs = keras.layers.Dense(classes, dtype="float32", name="logits")(x)
    model = keras.Model(inputs, outputs, name=name or spec.architecture)
    if reg.l1 or reg.l2:
        model = _with_kernel_regularizer(model, keras.regularizers.L1L2(l1=reg.l1, l2=reg.l2))
    return model


def _with_kernel_regularizer(model: keras.Model, regularizer: keras.regularizers.Regularizer) -> keras.Model:
    """A copy of `model` whose Conv2D, DepthwiseConv2D and Dense layers penalize their kernels
    (keras.applications take no regularizer argument), holding the same weights."""

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        for key in ("kernel_regularizer", "depthwise_regularizer"):
            if key in config:
                config[key] = keras.regularizers.serialize(regularizer)
        return type(layer).from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy
