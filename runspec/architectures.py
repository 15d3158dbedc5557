"""Parameter arithmetic of the built-in architectures, without TensorFlow.

The API uses it to refuse specs that only arithmetic can catch (more clusters than weights in
a kernel, a distillation student that is not smaller than its teacher) before queueing a run.
The worker builds the real Keras models in `worker.engine.models` from the same widths and
padding rule defined here; `tests/engine/test_architectures.py` checks both agree with
`count_params()` for every architecture.

The zoo (`runspec.zoo`, keras.applications) has no per-layer arithmetic here: Keras rounds its
widths layer by layer (`_make_divisible`). Its totals come from a table at alpha 1.0 on 3-channel
inputs; where the table cannot say, the checks that need a total are skipped (the worker logs the
real counts), and the clustering check is not needed (every zoo kernel smaller than the cluster
count is left unclustered by the engine, and no zoo model is made only of such kernels).
"""

from __future__ import annotations

from dataclasses import dataclass

from runspec.spec import ClusteringSpec, DistillationSpec, ModelSpec, RunSpec
from runspec.zoo import ZOO, zoo_params

# Input shape (H, W, C) and class count of the built-in datasets; uploads are unknown here.
DATASET_SHAPES: dict[str, tuple[tuple[int, int, int], int]] = {
    "digits": ((8, 8, 1), 10),
    "mnist": ((28, 28, 1), 10),
    "fashion_mnist": ((28, 28, 1), 10),
    "cifar10": ((32, 32, 3), 10),
}

# Base widths at width_multiplier 1.0.
SEED_CNN_FILTERS = (32, 64, 128)
SEED_CNN_DENSE = 128
MLP_UNITS = (256, 128)
DS_CNN_STEM = 32
DS_CNN_BLOCKS = (64, 128)


@dataclass(frozen=True)
class LayerCount:
    """Weights of one layer: `kernel` is what pruning and clustering act on."""

    name: str
    kernel: int
    bias: int

    @property
    def total(self) -> int:
        return self.kernel + self.bias


def scaled(width: int, multiplier: float) -> int:
    """Width of a layer after the multiplier; at least one unit."""
    return max(1, int(round(width * multiplier)))


def seed_cnn_padding(input_shape: tuple[int, ...]) -> str:
    """The seed's convolutions are 'valid' (28x28 → 3x3x128 before Flatten). Small inputs
    such as the 8x8 digits would shrink to nothing, so they use 'same' padding."""
    return "valid" if min(input_shape[0], input_shape[1]) >= 20 else "same"


def _conv_out(size: int, padding: str) -> int:
    return size - 2 if padding == "valid" else size


def layer_counts(model: ModelSpec, input_shape: tuple[int, int, int], classes: int) -> list[LayerCount]:
    """Per-layer weight counts of `model` for inputs of `input_shape` and `classes` outputs.
    Raises ValueError for a zoo architecture (see `model_params`)."""
    w = model.width_multiplier
    h, wd, c = input_shape
    layers: list[LayerCount] = []
    if model.architecture == "seed_cnn":
        pad = seed_cnn_padding(input_shape)
        filters = [scaled(f, w) for f in SEED_CNN_FILTERS]
        prev = c
        for i, f in enumerate(filters):
            layers.append(LayerCount(f"conv{i + 1}", 3 * 3 * prev * f, f))
            h, wd = _conv_out(h, pad), _conv_out(wd, pad)
            if i < 2:  # MaxPool(2) after the first two convolutions
                h, wd = h // 2, wd // 2
            prev = f
        flat = h * wd * prev
        dense = scaled(SEED_CNN_DENSE, w)
        layers.append(LayerCount("dense", flat * dense, dense))
        layers.append(LayerCount("logits", dense * classes, classes))
    elif model.architecture == "mlp":
        prev = h * wd * c
        for i, u in enumerate(MLP_UNITS):
            units = scaled(u, w)
            layers.append(LayerCount(f"dense{i + 1}", prev * units, units))
            prev = units
        layers.append(LayerCount("logits", prev * classes, classes))
    elif model.architecture == "ds_cnn":
        stem = scaled(DS_CNN_STEM, w)
        layers.append(LayerCount("stem", 3 * 3 * c * stem, stem))
        prev = stem
        for i, out in enumerate(DS_CNN_BLOCKS):
            width = scaled(out, w)
            layers.append(LayerCount(f"dw{i + 1}", 3 * 3 * prev, prev))
            layers.append(LayerCount(f"pw{i + 1}", prev * width, width))
            prev = width
        layers.append(LayerCount("logits", prev * classes, classes))
    else:
        raise ValueError(f"no per-layer arithmetic for architecture {model.architecture!r}")
    return layers


def model_params(model: ModelSpec, input_shape: tuple[int, int, int], classes: int) -> int | None:
    """Total parameters of `model` on inputs of `input_shape` (H, W, C) with `classes` outputs;
    None for a zoo model the table cannot count (runspec.zoo.zoo_params). A zoo model with ImageNet
    weights always reads 3 channels (grayscale is repeated)."""
    if model.architecture in ZOO:
        channels = 3 if model.weights == "imagenet" else input_shape[2]
        return zoo_params(model.architecture, model.width_multiplier, channels, classes)
    return sum(lc.total for lc in layer_counts(model, input_shape, classes))


def param_counts(spec: RunSpec) -> dict[str, int] | None:
    """Total weights per layer of the spec's model on its dataset; None for uploads and the zoo."""
    if spec.dataset.name not in DATASET_SHAPES or spec.model.architecture in ZOO:
        return None
    shape, classes = DATASET_SHAPES[spec.dataset.name]
    return {lc.name: lc.total for lc in layer_counts(spec.model, shape, classes)}


def total_params(model: ModelSpec, dataset: str) -> int | None:
    if dataset not in DATASET_SHAPES:
        return None
    shape, classes = DATASET_SHAPES[dataset]
    return model_params(model, shape, classes)


def check_spec_semantics(
    spec: RunSpec, *, teacher_model: ModelSpec | None = None, dataset: tuple[tuple[int, int, int], int] | None = None
) -> list[tuple[str, str]]:
    """Errors that need arithmetic on the architecture, as (field path, message).

    `teacher_model`: the teacher run's ModelSpec when the caller has it (the API reads it
    from the teacher run's stored spec); without it the student is compared with the
    default seed_cnn at width 1.0, the usual teacher. `dataset`: ((H, W, C), classes) of an
    upload (from its stored info); built-in datasets are known here.
    """
    errors: list[tuple[str, str]] = []
    if dataset is None and spec.dataset.name not in DATASET_SHAPES:
        return errors  # an upload whose shape the caller did not pass (or (F,) features)
    shape, classes = dataset or DATASET_SHAPES[spec.dataset.name]
    counts = [] if spec.model.architecture in ZOO else layer_counts(spec.model, shape, classes)
    for i, t in enumerate(spec.techniques):
        if isinstance(t, ClusteringSpec) and counts:
            smallest = min(counts, key=lambda lc: lc.kernel)
            if t.number_of_clusters > smallest.kernel:
                errors.append(
                    (
                        f"techniques.{i}.number_of_clusters",
                        f"{t.number_of_clusters} clusters but layer '{smallest.name}' of "
                        f"{spec.model.architecture} on {spec.dataset.name} has only "
                        f"{smallest.kernel} weights in its kernel",
                    )
                )
        if isinstance(t, DistillationSpec):
            teacher = teacher_model or ModelSpec()
            t_total = model_params(teacher, shape, classes)
            s_total = model_params(spec.model, shape, classes)
            if t_total is not None and s_total is not None and s_total >= t_total:
                errors.append(
                    (
                        "model",
                        f"the distillation student ({spec.model.architecture} x"
                        f"{spec.model.width_multiplier}, {s_total} parameters) is not smaller than "
                        f"its teacher ({teacher.architecture} x{teacher.width_multiplier}, "
                        f"{t_total} parameters)",
                    )
                )
    return errors
