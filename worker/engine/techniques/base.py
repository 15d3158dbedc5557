"""The one interface every technique implements: apply → fine-tune with callbacks → strip.

The shape is tensorflow/model-optimization's: `prune_low_magnitude` / `UpdatePruningStep` /
`strip_pruning`, `cluster_weights` / `strip_clustering`, `quantize_apply` and its converter.
A technique is a small stateless object; what one phase hands to the next is data
(`Applied`, `PhaseContext.kept`), never attributes probed with getattr.

`worker.engine.job` runs every technique the same way:

    applied = technique.apply(model, spec, context)     # wrap the model, maybe change the problem
    fit_phase(applied.model, applied.arrays or arrays, callbacks=applied.callbacks, ...)
    model = technique.strip(applied)                    # plain float32 Keras layers again

A technique whose `replaces_training` is true (distillation) runs as the base training phase,
with the run's optimizer, schedule and early stopping; the others fine-tune the trained model
afterwards for `fine_tune_epochs(spec, steps_per_epoch)` epochs at `learning_rate(spec, training_rate)`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel

from runspec.spec import TrainingSpec
from worker.engine.contract import CheckpointResolver, ModelResolver, Reporter, no_checkpoints
from worker.engine.data import Data
from worker.engine.tfsetup import keras
from worker.engine.training import Arrays

# Properties of the weights a technique leaves that later techniques must preserve.
SPARSITY = "sparsity"  # pruned kernels hold zeros
CLUSTERS = "clusters"  # clustered kernels hold at most `number_of_clusters` distinct values

SpecT = TypeVar("SpecT")


@dataclass(frozen=True)
class PhaseContext:
    """What a technique may read about the job when it is applied.

    `data`: the job's arrays (x float32 of shape (N, *input_shape), y int labels of shape (N,));
    `training`: the run's training spec; `steps_per_epoch`: optimizer steps (batches) per epoch
    of the training set; `kept`: properties earlier techniques left (`SPARSITY`, `CLUSTERS`);
    `reporter`: for log lines and heartbeats during a long apply; `resolve_model`: finished
    run id → path of its `.keras` file (raises LookupError/ValueError when there is none);
    `resolve_checkpoint`: (run id, epoch) → path of that run's checkpoint after that epoch.
    """

    data: Data
    training: TrainingSpec
    steps_per_epoch: int
    kept: frozenset[str]
    reporter: Reporter
    resolve_model: ModelResolver
    resolve_checkpoint: CheckpointResolver = no_checkpoints


@dataclass(frozen=True)
class Applied:
    """A technique applied to `base`: the model its phase fits and what that fit needs.

    `arrays`, `loss` and `metrics` are None when the phase trains on the job's own labels with
    the job's loss and metrics; a technique that changes the problem sets them (distillation
    fits a wrapper whose own train step computes its loss and metrics: loss and metrics empty).
    """

    base: keras.Model  # the model before apply (float32 layers)
    model: keras.Model  # the model to fit: wrapped layers, or `base` itself
    callbacks: Sequence[keras.callbacks.Callback] = ()  # e.g. tfmot's UpdatePruningStep
    notes: Sequence[str] = ()  # lines for the run's log, written before the fit
    arrays: Arrays | None = None
    loss: Callable | None = None
    metrics: Sequence | None = None
    # figures the technique measures once its fit is over (before strip), recorded as run
    # metrics at the phase's last step, e.g. {"distillation/top1_agreement": 0.97}
    measure: Callable[[], dict[str, float]] | None = None


class Technique(ABC, Generic[SpecT]):
    """One model-optimization technique, run for one entry of `RunSpec.techniques`.

    Class attributes are the technique's data (as tfmot's registries are tables):
    `spec_type` is the runspec model it runs (the registry's key); `replaces_training` marks a
    technique whose phase is the base training (it must come first); `keeps` names what its
    stripped weights hold that later techniques must preserve; `int8_from_fine_tuned` says the
    job's int8 export is converted from the fitted (wrapped) model instead of the stripped one.
    """

    spec_type: ClassVar[type[BaseModel]]
    replaces_training: ClassVar[bool] = False
    keeps: ClassVar[frozenset[str]] = frozenset()
    int8_from_fine_tuned: ClassVar[bool] = False

    @abstractmethod
    def label(self, spec: SpecT) -> str:
        """The phase's name in the run's log, e.g. 'pruning to 80% (polynomial)'."""

    @abstractmethod
    def fine_tune_epochs(self, spec: SpecT, steps_per_epoch: int) -> int:
        """Epochs of the technique's own fine-tuning phase (≥ 1) when an epoch is
        `steps_per_epoch` batches; 0 when `replaces_training` (its epochs are `training.epochs`)."""

    @abstractmethod
    def learning_rate(self, spec: SpecT, training_rate: float) -> float:
        """The fine-tuning rate, given the run's optimizer rate `training_rate`."""

    @abstractmethod
    def apply(self, model: keras.Model, spec: SpecT, context: PhaseContext) -> Applied:
        """Wrap `model` (float32 layers; not modified) for the phase's fit.

        Raises ValueError when the spec cannot apply to this model or data (e.g. a teacher of
        another input shape), and whatever `context.resolve_model` raises."""

    def strip(self, applied: Applied) -> keras.Model:
        """The fitted model as plain float32 Keras layers (loadable with safe_mode=True),
        holding the weights the phase trained. Default: the fitted model itself."""
        return applied.model


class FineTuningSpec(Protocol):
    """What every fine-tuning technique's spec says (runspec.spec): its default recipe lives in
    the spec, so the API documents it and the engine follows it."""

    def fine_tuning_epochs(self, steps_per_epoch: int) -> int: ...

    def fine_tuning_rate(self, training_rate: float) -> float: ...


FineT = TypeVar("FineT", bound=FineTuningSpec)


class FineTuning(Technique[FineT]):
    """A technique that fine-tunes the trained model for the spec's fine-tuning epochs at its
    fine-tuning rate (pruning, clustering, QAT; defaults in runspec.spec, figures in
    docs/results.md)."""

    def fine_tune_epochs(self, spec: FineT, steps_per_epoch: int) -> int:
        return spec.fine_tuning_epochs(steps_per_epoch)

    def learning_rate(self, spec: FineT, training_rate: float) -> float:
        return spec.fine_tuning_rate(training_rate)
