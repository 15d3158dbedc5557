"""The run spec: what a user may ask a worker to do, as data only.

Shared by the API (validation at submit) and the worker (it re-validates the stored JSON).
Pure pydantic: no TensorFlow, no database. Every model forbids unknown fields and bounds
every number and string, so a spec can never carry a path, URL, module name or command.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

from runspec.vocabulary import MAX_ID, ExportFormat
from runspec.zoo import ZOO, ZOO_ARCHITECTURES


def applies_when(**sibling_values: list[str]) -> dict[str, JsonValue]:
    """JSON-schema annotation: this field matters only while a sibling field has one of these
    values (e.g. momentum only for sgd and rmsprop); the launch form hides it otherwise and
    leaves it at its default. Documentation for the form, not a validation rule."""
    return {"x-applies-when": {k: list(v) for k, v in sibling_values.items()}}


BUILTIN_DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10")
BUILTIN_ARCHITECTURES = ("seed_cnn", "mlp", "ds_cnn")
ARCHITECTURES = BUILTIN_ARCHITECTURES + ZOO_ARCHITECTURES  # the zoo: runspec.zoo
WIDTH_ARCHITECTURES = [*BUILTIN_ARCHITECTURES, *(a for a in ZOO_ARCHITECTURES if ZOO[a].has_alpha)]

Name = Annotated[str, Field(min_length=1, max_length=200)]
Tag = Annotated[str, Field(min_length=1, max_length=64)]
MAX_SEED = 2**31 - 1
MAX_REPEATS = 20


class SpecError(ValueError):
    """A broken rule that spans fields; `field` is the dotted path (relative to the model that
    raised it) that the API appends to the error's location, so a 422 names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="after")
    def _set_only_where_it_applies(self) -> Strict:
        """A field annotated with `applies_when` that a request set to something other than its
        default while the sibling rules it out (momentum 0.9 with adam) is refused, naming the
        field: it would be stored and silently ignored. Left at its default it is fine (a stored
        spec carries every field)."""
        for name in self.model_fields_set:
            info = type(self).model_fields[name]
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            rule = extra.get("x-applies-when")
            if not isinstance(rule, dict) or getattr(self, name) == info.default:
                continue
            for sibling, allowed in rule.items():
                current = getattr(self, sibling, None)
                if isinstance(allowed, list) and current not in allowed:
                    raise SpecError(
                        name,
                        f"{name} applies only when {sibling} is {' or '.join(map(str, allowed))}, "
                        f"not {current!r}: it would be ignored (leave it out)",
                    )
        return self


class DatasetSpec(Strict):
    name: Literal["digits", "mnist", "fashion_mnist", "cifar10", "upload"] = "digits"
    upload_id: int | None = Field(
        default=None,
        ge=1,
        le=MAX_ID,
        title="Uploaded dataset id",
        description="upload an .npz here, or the id from POST /api/datasets",
        json_schema_extra=applies_when(name=["upload"]),
    )
    validation_split: float = Field(default=0.1, ge=0.0, le=0.5)
    normalize: Literal["scale", "standardize", "none"] = "scale"
    limit_train: int | None = Field(default=None, ge=10, le=10_000_000, description="use the first N training examples")
    limit_test: int | None = Field(default=None, ge=10, le=10_000_000, description="use the first N test examples")
    seed: int = Field(default=0, ge=0, le=2**31 - 1)

    @model_validator(mode="after")
    def _upload_needs_id(self) -> DatasetSpec:
        if self.name == "upload" and self.upload_id is None:
            raise SpecError("upload_id", "upload_id is required when name is 'upload'")
        if self.name != "upload" and self.upload_id is not None:
            raise SpecError("upload_id", "upload_id is only allowed when name is 'upload'")
        return self


class ModelSpec(Strict):
    architecture: Literal[
        "seed_cnn", "mlp", "ds_cnn", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "resnet50"
    ] = "seed_cnn"
    width_multiplier: float = Field(
        default=1.0,
        ge=0.25,
        le=2.0,
        description="scales every layer's width; MobileNet's alpha for mobilenet_v2 and mobilenet_v3_small",
        json_schema_extra=applies_when(architecture=WIDTH_ARCHITECTURES),
    )
    input_size: int = Field(
        default=96,
        ge=32,
        le=512,
        title="Input size (pixels)",
        description="zoo architectures: the dataset's images are resized to this square side inside the model",
        json_schema_extra=applies_when(architecture=list(ZOO_ARCHITECTURES)),
    )
    weights: Literal["none", "imagenet"] = Field(
        default="none",
        description="zoo architectures: random initial weights, or ImageNet weights read from the Keras cache "
        "($KERAS_HOME/models or ~/.keras/models; never downloaded at run time)",
        json_schema_extra=applies_when(architecture=list(ZOO_ARCHITECTURES)),
    )
    init_from_run_id: int | None = Field(
        default=None,
        ge=1,
        le=MAX_ID,
        description="start from this finished run's trained model instead of a fresh one "
        "(architecture and width are then those of that model); training.epochs may be 0",
    )
    upload_id: int | None = Field(
        default=None,
        ge=1,
        le=MAX_ID,
        title="Uploaded model id",
        description="optimize your own model: the id from POST /api/models (architecture and width are "
        "then those of that model; it is measured as it came first); training.epochs may be 0",
    )

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        if self.upload_id is not None and self.init_from_run_id is not None:
            raise SpecError("upload_id", "upload_id and init_from_run_id name two starting models: choose one")
        return self

    @model_validator(mode="after")
    def _published_weights(self) -> ModelSpec:
        """ImageNet weights exist only for the alphas Keras publishes (tf_keras.applications:
        MobileNetV2 0.35-1.4, MobileNetV3Small 0.75 and 1.0)."""
        zoo = ZOO.get(self.architecture)
        if zoo is not None and zoo.has_alpha and self.weights == "imagenet":
            if self.width_multiplier not in zoo.imagenet_alphas:
                raise SpecError(
                    "width_multiplier",
                    f"Keras publishes ImageNet weights for {self.architecture} only at width_multiplier (alpha) "
                    f"{', '.join(f'{a:g}' for a in zoo.imagenet_alphas)}, not {self.width_multiplier:g}: "
                    "pick one of those or weights 'none'",
                )
        return self


class OptimizerSpec(Strict):
    name: Literal["sgd", "adam", "adamw", "rmsprop"] = "adam"
    learning_rate: float = Field(default=0.001, gt=0.0, le=10.0)
    momentum: float = Field(default=0.0, ge=0.0, lt=1.0, json_schema_extra=applies_when(name=["sgd", "rmsprop"]))
    nesterov: bool = Field(default=False, json_schema_extra=applies_when(name=["sgd"]))
    weight_decay: float = Field(default=0.0, ge=0.0, le=1.0, json_schema_extra=applies_when(name=["adamw"]))
    clipnorm: float | None = Field(default=None, gt=0.0, le=1e6)
    clipvalue: float | None = Field(default=None, gt=0.0, le=1e6)

    @model_validator(mode="after")
    def _coherent(self) -> OptimizerSpec:
        if self.nesterov and (self.name != "sgd" or self.momentum == 0.0):
            raise SpecError("nesterov", "nesterov needs the sgd optimizer with momentum > 0")
        if self.weight_decay and self.name != "adamw":
            raise SpecError("weight_decay", "weight_decay applies to adamw only (use regularization.l2 otherwise)")
        return self


class ScheduleSpec(Strict):
    name: Literal["constant", "step", "exponential", "cosine", "plateau"] = "constant"
    warmup_epochs: int = Field(default=0, ge=0, le=100)
    step_epochs: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="step: epochs between drops",
        json_schema_extra=applies_when(name=["step"]),
    )
    gamma: float = Field(
        default=0.1,
        gt=0.0,
        le=1.0,
        description="step/exponential/plateau factor",
        json_schema_extra=applies_when(name=["step", "exponential", "plateau"]),
    )
    patience: int = Field(
        default=2,
        ge=1,
        le=100,
        description="plateau: epochs without improvement",
        json_schema_extra=applies_when(name=["plateau"]),
    )
    min_learning_rate: float = Field(
        default=0.0, ge=0.0, le=1.0, json_schema_extra=applies_when(name=["step", "exponential", "cosine", "plateau"])
    )


class RegularizationSpec(Strict):
    l1: float = Field(default=0.0, ge=0.0, le=1.0)
    l2: float = Field(default=0.0, ge=0.0, le=1.0)
    dropout: float = Field(default=0.0, ge=0.0, le=0.9)
    label_smoothing: float = Field(default=0.0, ge=0.0, le=0.5)


class EarlyStoppingSpec(Strict):
    patience: int = Field(default=3, ge=1, le=100)
    min_delta: float = Field(default=0.0, ge=0.0, le=10.0)


class PipelineSpec(Strict):
    cache: bool = Field(
        default=True,
        description="in-memory arrays enter tf.data once as whole tensors and each batch is one gather of shuffled indices; false: image-by-image slices",
    )
    prefetch: bool = Field(default=True, description="the next batches are prepared while a step runs")
    steps_per_execution: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="batches per compiled call; callbacks (logging, cancel checks) run between calls",
    )
    xla: bool = Field(
        default=False,
        title="XLA",
        description="compile the training step with XLA (base training only; often slower on CPUs)",
    )
    mixed_precision: bool = Field(
        default=False,
        description="float32 weights, 16-bit compute in base training and distillation: float16 on a GPU, "
        "bfloat16 on a CPU with AVX512_BF16 or AMX; elsewhere float32 (the run's log says which)",
    )


MAX_CHECKPOINTS = 20  # per run: training.checkpoint_every_epochs keeps the latest ones


class AugmentationSpec(Strict):
    """Random changes to each training image, drawn per batch on the fly inside the input pipeline
    (validation and test images are never changed); seeded by training.seed."""

    shift: float = Field(
        default=0.0,
        ge=0.0,
        le=0.5,
        description="random translation of each training image by up to this fraction of its width and of its "
        "height (whole pixels, the uncovered border filled with 0); 0: off",
    )
    horizontal_flip: bool = Field(
        default=False,
        description="mirror each training image left-right with probability 1/2: suits Fashion-MNIST- and "
        "CIFAR-like photos of objects, not digits or text (a mirrored 3 is not a 3)",
    )

    @property
    def enabled(self) -> bool:
        return self.shift > 0 or self.horizontal_flip


class TrainingSpec(Strict):
    optimizer: OptimizerSpec = OptimizerSpec()
    schedule: ScheduleSpec = ScheduleSpec()
    regularization: RegularizationSpec = RegularizationSpec()
    early_stopping: EarlyStoppingSpec | None = None
    pipeline: PipelineSpec = PipelineSpec()
    epochs: int = Field(default=3, ge=0, le=1000, description="0 only with model.init_from_run_id or model.upload_id")
    batch_size: int = Field(default=32, ge=1, le=8192)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    log_every_n_batches: int = Field(default=10, ge=1, le=100_000)
    augmentation: AugmentationSpec = Field(
        default=AugmentationSpec(),
        description="random shifts and flips of the training images (image datasets only); off by default",
    )
    mixup_alpha: float = Field(
        default=0.0,
        ge=0.0,
        le=10.0,
        description="mixup (Zhang et al. 2018): each training batch becomes λ·batch + (1−λ)·a shuffled copy of "
        "itself, labels mixed alike, λ ~ Beta(α, α) per batch; 0: off (0.1–0.4 are usual)",
    )
    checkpoint_every_epochs: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="also keep the model after every N-th epoch of base training (at most "
        f"{MAX_CHECKPOINTS} checkpoints, the latest kept), e.g. to distil from an earlier teacher; off by default",
    )


# Default fine-tuning recipes of the techniques (figures in docs/results.md): QAT and
# clustering fine-tune at a tenth of the training rate; pruning at the training rate for at
# least PRUNING_MIN_STEPS steps.
FINE_TUNING_RATE_FACTOR = 0.1
PRUNING_MIN_STEPS = 1000
PRUNING_MIN_EPOCHS = 2


def recovery_epochs(steps_per_epoch: int) -> int:
    """Pruning's default fine-tuning epochs: the fewest epochs of `steps_per_epoch` batches that
    give at least PRUNING_MIN_STEPS optimizer steps, and at least PRUNING_MIN_EPOCHS (≤ 1000)."""
    return max(PRUNING_MIN_EPOCHS, min(1000, -(-PRUNING_MIN_STEPS // max(1, steps_per_epoch))))


class PruningSpec(Strict):
    name: Literal["pruning"]
    target_sparsity: float = Field(default=0.8, ge=0.0, le=0.99)
    initial_sparsity: float = Field(default=0.0, ge=0.0, le=0.99)
    schedule: Literal["constant", "polynomial"] = "polynomial"
    begin_step: int = Field(default=0, ge=0, le=10_000_000)
    end_step: int | None = Field(
        default=None, ge=1, le=10_000_000, description="steps from the start of fine-tuning; default: two thirds of it"
    )
    frequency: int = Field(default=50, ge=1, le=100_000)
    epochs: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description=(
            f"fine-tuning epochs; default: enough for {PRUNING_MIN_STEPS} steps, at least {PRUNING_MIN_EPOCHS}"
        ),
    )
    learning_rate: float | None = Field(
        default=None, gt=0.0, le=10.0, description="fine-tuning rate; default: the optimizer's"
    )

    def fine_tuning_epochs(self, steps_per_epoch: int) -> int:
        """`epochs`, or by default the fewest epochs of `steps_per_epoch` batches that give at
        least PRUNING_MIN_STEPS steps (and at least PRUNING_MIN_EPOCHS): the network must
        recover from the weights the schedule removes (measured in docs/results.md)."""
        return self.epochs if self.epochs is not None else recovery_epochs(steps_per_epoch)

    def fine_tuning_rate(self, training_rate: float) -> float:
        """`learning_rate`, or by default the training rate (a lower rate recovers less)."""
        return self.learning_rate if self.learning_rate is not None else training_rate

    @model_validator(mode="after")
    def _ordered(self) -> PruningSpec:
        if self.initial_sparsity > self.target_sparsity:
            raise SpecError("initial_sparsity", "initial_sparsity must not exceed target_sparsity")
        if self.end_step is not None and self.end_step <= self.begin_step:
            raise SpecError("end_step", "end_step must be greater than begin_step")
        return self


class _FineTuneAtLowerRate:
    """QAT and clustering fine-tune an already trained model: by default at a tenth of the
    training rate, which keeps accuracy where the training rate itself lost up to 1 point
    (docs/results.md, "Default fine-tuning settings")."""

    epochs: int
    learning_rate: float | None

    def fine_tuning_epochs(self, steps_per_epoch: int) -> int:
        return self.epochs

    def fine_tuning_rate(self, training_rate: float) -> float:
        """`learning_rate`, or FINE_TUNING_RATE_FACTOR × the training rate."""
        return self.learning_rate if self.learning_rate is not None else training_rate * FINE_TUNING_RATE_FACTOR


class QATSpec(_FineTuneAtLowerRate, Strict):
    name: Literal["qat"]
    epochs: int = Field(default=1, ge=1, le=1000, description="fine-tuning epochs")
    learning_rate: float | None = Field(
        default=None,
        gt=0.0,
        le=10.0,
        description=(f"fine-tuning rate; default: {FINE_TUNING_RATE_FACTOR} × training.optimizer.learning_rate"),
    )


class ClusteringSpec(_FineTuneAtLowerRate, Strict):
    name: Literal["clustering"]
    number_of_clusters: int = Field(default=16, ge=2, le=65536)
    centroid_init: Literal["kmeans_plus_plus", "linear", "density_based", "random"] = "kmeans_plus_plus"
    epochs: int = Field(default=1, ge=1, le=1000, description="fine-tuning epochs")
    learning_rate: float | None = Field(
        default=None,
        gt=0.0,
        le=10.0,
        description=(f"fine-tuning rate; default: {FINE_TUNING_RATE_FACTOR} × training.optimizer.learning_rate"),
    )


class FineTuningSpec(Strict):
    """Plain fine-tuning: the trained model trained on for `epochs` more at `learning_rate`,
    with the run's loss and nothing wrapped. The same-budget control of a fine-tuning technique
    (runspec.controls) replaces the technique by this, so the two differ only by the technique.
    Its defaults are pruning's (the fine-tuning it most often stands in for): enough epochs for
    PRUNING_MIN_STEPS steps, at the training rate."""

    name: Literal["fine_tuning"]
    epochs: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description=(
            f"fine-tuning epochs; default: enough for {PRUNING_MIN_STEPS} steps, at least {PRUNING_MIN_EPOCHS} "
            "(pruning's default, which a pruning run's control mirrors)"
        ),
    )
    learning_rate: float | None = Field(
        default=None, gt=0.0, le=10.0, description="fine-tuning rate; default: the optimizer's"
    )

    def fine_tuning_epochs(self, steps_per_epoch: int) -> int:
        """`epochs`, or by default pruning's rule (PruningSpec.fine_tuning_epochs)."""
        return self.epochs if self.epochs is not None else recovery_epochs(steps_per_epoch)

    def fine_tuning_rate(self, training_rate: float) -> float:
        """`learning_rate`, or by default the training rate."""
        return self.learning_rate if self.learning_rate is not None else training_rate


ValueSchedule = Literal["constant", "linear", "cosine"]


def scheduled_value(start: float, end: float | None, schedule: str, epoch: int, epochs: int) -> float:
    """The value of a per-epoch schedule at `epoch` (0-based) of `epochs`: `start` throughout
    when constant; else from `start` at the first epoch to `end` at the last, along a straight
    line (linear) or half a cosine wave, end + (start − end)·(1 + cos(π·p))/2 with p = epoch /
    (epochs − 1) (cosine, as SGDR's learning rate: Loshchilov & Hutter 2017). One epoch: `start`."""
    if schedule == "constant" or end is None or epochs <= 1:
        return start
    p = min(max(epoch / (epochs - 1), 0.0), 1.0)
    if schedule == "linear":
        return start + (end - start) * p
    return end + (start - end) * (1 + math.cos(math.pi * p)) / 2


class DistillationSpec(Strict):
    """Knowledge distillation (Hinton et al. 2015) taught consistently (Beyer et al. 2022): the
    teacher's logits are computed every step on the very batch the student sees, after the run's
    augmentation and mixup; loss α·CE(labels, student) + (1 − α)·T²·KL(teacher_T ‖ student_T).

    Defaults T = 1, α = 0: "function matching" (Beyer et al. 2022), the student matches the
    teacher's softmax on every batch. It is the one recipe measured here to beat the same student
    from scratch (docs/results.md, "Distillation against training from scratch": on
    Fashion-MNIST, ×0.25 student, T = 4/α = 0.1 gave −1.72 points, T = 2/α = 0.5 −0.51, T = 1/α = 0
    +0.44 in one-seed probes, then +0.70 over 3 seeds and +0.87 over 5)."""

    name: Literal["distillation"]
    teacher_run_id: int = Field(ge=1, le=MAX_ID)
    teacher_epoch: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="distil from the teacher run's checkpoint saved after this epoch (the teacher must have "
        "been trained with training.checkpoint_every_epochs dividing it) instead of its final model",
    )
    temperature: float = Field(
        default=1.0, ge=1.0, le=100.0, description="softmax temperature T (at the first epoch; Hinton et al. used 2–20)"
    )
    temperature_schedule: ValueSchedule = Field(
        default="constant", description="how T moves over the epochs: constant, or from temperature to temperature_end"
    )
    temperature_end: float | None = Field(
        default=None,
        ge=1.0,
        le=100.0,
        description="T at the last epoch",
        json_schema_extra=applies_when(temperature_schedule=["linear", "cosine"]),
    )
    alpha: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="weight α of the hard-label cross-entropy (at the first epoch; 0: the teacher's softmax only)",
    )
    alpha_schedule: ValueSchedule = Field(
        default="constant", description="how α moves over the epochs: constant, or from alpha to alpha_end"
    )
    alpha_end: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="α at the last epoch",
        json_schema_extra=applies_when(alpha_schedule=["linear", "cosine"]),
    )

    @model_validator(mode="after")
    def _schedules_have_ends(self) -> DistillationSpec:
        for what in ("temperature", "alpha"):
            if getattr(self, f"{what}_schedule") != "constant" and getattr(self, f"{what}_end") is None:
                raise SpecError(
                    f"{what}_end",
                    f"{what}_end is required when {what}_schedule is {getattr(self, f'{what}_schedule')!r}",
                )
        return self

    def temperature_at(self, epoch: int, epochs: int) -> float:
        """T at `epoch` (0-based) of `epochs` (scheduled_value)."""
        return scheduled_value(self.temperature, self.temperature_end, self.temperature_schedule, epoch, epochs)

    def alpha_at(self, epoch: int, epochs: int) -> float:
        """α at `epoch` (0-based) of `epochs` (scheduled_value)."""
        return scheduled_value(self.alpha, self.alpha_end, self.alpha_schedule, epoch, epochs)


Technique = Annotated[
    PruningSpec | QATSpec | ClusteringSpec | FineTuningSpec | DistillationSpec, Field(discriminator="name")
]
# Techniques that fine-tune a trained model: a run's same-budget control replaces each by
# `fine_tuning` with the same epochs and rate (runspec.controls).
FINE_TUNING_TECHNIQUES = ("pruning", "qat", "clustering")


class ExportOptions(Strict):
    representative_samples: int = Field(default=200, ge=1, le=10_000)


class MeasurementSpec(Strict):
    """How the harness times each variant (docs/techniques.md, "Latency protocol")."""

    latency_runs: int = Field(default=200, ge=10, le=100_000, description="timed batch-1 runs, at least")
    warmup_runs: int = Field(default=20, ge=0, le=10_000, description="untimed runs before them")
    throughput_batch: int = Field(default=32, ge=1, le=4096)
    protocol: Literal["full", "quick", "off"] = Field(
        default="full",
        description=(
            "full: 1 thread and all cores, each for the larger of latency_runs or min_duration_s, re-measured "
            "once when unstable, peak memory in a fresh process; quick: latency_runs at 1 thread only, no "
            "re-measure, no memory process; off: no latency at all"
        ),
    )
    min_duration_s: float = Field(
        default=1.0, ge=0.0, le=60.0, description="full protocol: keep timing until this many seconds have passed"
    )
    max_cv: float = Field(
        default=0.5, gt=0.0, le=10.0, description="stability guard: coefficient of variation above which to re-measure"
    )
    max_p99_over_p50: float = Field(
        default=3.0, gt=1.0, le=100.0, description="stability guard: p99 / p50 above which to re-measure"
    )


class RunSpec(Strict):
    """A whole run: train (or fine-tune) a model, then export and measure its variants."""

    name: Name = "run"
    experiment: Name = "default"
    kind: Literal["train", "optimize"] = "train"
    parent_run_id: int | None = Field(
        default=None, ge=1, le=MAX_ID, description="optimize: the finished run whose model to convert"
    )
    external: bool = Field(default=False, description="metrics are logged by an outside script; no worker job")
    dataset: DatasetSpec = DatasetSpec()
    model: ModelSpec = ModelSpec()
    training: TrainingSpec = TrainingSpec()
    techniques: list[Technique] = Field(default_factory=list, max_length=8)
    exports: list[ExportFormat] = Field(default_factory=lambda: list[ExportFormat](["float32"]), max_length=4)
    export_options: ExportOptions = ExportOptions()
    measurement: MeasurementSpec = MeasurementSpec()
    tags: list[Tag] = Field(default_factory=list, max_length=32)
    notes: str = Field(default="", max_length=10_000)
    control: bool = Field(
        default=False,
        title="Same-budget control",
        description=(
            "also queue this run's same-budget control: the run without its technique, trained as many epochs "
            "(train runs with a technique)"
        ),
    )
    repeats: int = Field(
        default=1,
        ge=1,
        le=MAX_REPEATS,
        description="train this recipe N times as N runs with training.seed = seed, seed+1, …, seed+N-1 "
        "(dataset.seed stays: the split is the same, only initialisation and shuffling vary); the runs "
        "form one seed group, compared as a mean with its 95 % confidence interval",
    )

    @field_validator("exports")
    @classmethod
    def _unique_exports(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("exports must not repeat a format")
        return v

    @model_validator(mode="after")
    def _chain(self) -> RunSpec:
        names = [t.name for t in self.techniques]
        if self.kind == "optimize":
            if self.parent_run_id is None:
                raise SpecError("parent_run_id", "parent_run_id is required for an optimize run")
            if names:
                raise SpecError(
                    "techniques",
                    "an optimize run applies post-training exports only: techniques must be empty (QAT, pruning, clustering and distillation need training)",
                )
            if not self.exports:
                raise SpecError("exports", "an optimize run needs at least one export")
        elif self.parent_run_id is not None:
            raise SpecError("parent_run_id", "parent_run_id is only allowed for optimize runs")
        no_val = self.dataset.validation_split == 0
        if no_val and self.training.early_stopping is not None:
            raise SpecError(
                "training.early_stopping",
                "early_stopping watches the validation loss: dataset.validation_split must be > 0",
            )
        if no_val and self.training.schedule.name == "plateau":
            raise SpecError(
                "training.schedule.name",
                "the plateau schedule watches the validation loss: dataset.validation_split must be > 0",
            )
        if self.training.epochs == 0 and self.model.init_from_run_id is None and self.model.upload_id is None:
            raise SpecError(
                "training.epochs",
                "training.epochs must be at least 1 unless model.init_from_run_id or model.upload_id is set",
            )
        for source in ("init_from_run_id", "upload_id"):
            if getattr(self.model, source) is None:
                continue
            if "distillation" in names:
                raise SpecError(
                    f"model.{source}", f"distillation trains a fresh student: model.{source} is not allowed with it"
                )
            if self.kind == "optimize":
                raise SpecError(f"model.{source}", f"an optimize run starts from parent_run_id, not model.{source}")
        if self.control and (self.kind != "train" or self.external or not any(n != "fine_tuning" for n in names)):
            raise SpecError(
                "control",
                "control needs a train run (not external) with a pruning, QAT, clustering or distillation "
                "technique: it is that run without the technique",
            )
        for n in set(names) - {"fine_tuning"}:  # a control replaces each fine-tune by one
            if names.count(n) > 1:
                raise SpecError("techniques", f"technique '{n}' appears more than once")
        if "distillation" in names and names.index("distillation") != 0:
            raise SpecError("techniques", "distillation must come first: it trains the student from scratch")
        if self.training.seed + self.repeats - 1 > MAX_SEED:
            raise SpecError(
                "repeats",
                f"repeats {self.repeats} from training.seed {self.training.seed} would pass the largest seed {MAX_SEED}",
            )
        if self.repeats > 1 and (self.external or self.kind == "optimize"):
            why = "an external run is trained by its own script" if self.external else "an optimize run trains nothing"
            raise SpecError("repeats", f"{why}: repeats must be 1")
        if "qat" in names and names[-1] != "qat":
            raise SpecError(
                "techniques",
                "qat must be the last technique: pruning or clustering after quantization-aware training is not supported",
            )
        return self


def techniques_summary(spec: RunSpec) -> str:
    """A short human label of the recipe, e.g. 'seed_cnn ×0.5 adam · pruning80 → qat · int8'
    (the width multiplier when it is not 1; an external run is 'external': its script trains it)."""
    if spec.external:
        return "external"
    width = f" ×{spec.model.width_multiplier:g}" if spec.model.width_multiplier != 1.0 else ""
    if spec.model.architecture in ZOO:
        width += f" {spec.model.input_size}px" + (" imagenet" if spec.model.weights == "imagenet" else "")
    model = f"model #{spec.model.upload_id}" if spec.model.upload_id is not None else spec.model.architecture + width
    parts = [
        f"{model} {spec.training.optimizer.name}"
        + (" mixed-precision" if spec.training.pipeline.mixed_precision else "")
    ]
    chain = []
    for t in spec.techniques:
        if isinstance(t, PruningSpec):
            chain.append(f"pruning{round(t.target_sparsity * 100)}")
        elif isinstance(t, ClusteringSpec):
            chain.append(f"clustering{t.number_of_clusters}")
        else:
            chain.append(t.name)
    if chain:
        parts.append(" → ".join(chain))
    if spec.exports:
        parts.append("+".join(spec.exports))
    return " · ".join(parts)
