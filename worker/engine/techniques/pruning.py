"""Magnitude pruning (tfmot): wrap, fine-tune with the step callback, strip before export."""

from __future__ import annotations

import tensorflow_model_optimization as tfmot

from runspec.spec import PruningSpec
from worker.engine.techniques.base import SPARSITY, Applied, FineTuning, PhaseContext
from worker.engine.tfsetup import keras

sparsity = tfmot.sparsity.keras


def prune_supported(model: keras.Model, schedule: sparsity.PruningSchedule) -> keras.Model:
    """`prune_low_magnitude` on the whole model when tfmot's PruneRegistry supports every layer;
    else on each supported layer only, the others (weightless layers the registry does not list,
    such as Rescaling: the preflight's "fix") left as they are, through clone_model with a
    clone_function (tfmot's pruning guide, "Prune some layers")."""
    from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import PruneRegistry

    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    if all(PruneRegistry.supports(layer) for layer in layers):
        return sparsity.prune_low_magnitude(model, pruning_schedule=schedule)

    def wrap(layer: keras.layers.Layer) -> keras.layers.Layer:
        if type(layer).__name__ != "InputLayer" and PruneRegistry.supports(layer):
            return sparsity.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer.__class__.from_config(layer.get_config())

    pruned = keras.models.clone_model(model, clone_function=wrap)
    for layer in model.layers:
        twin = pruned.get_layer(("prune_low_magnitude_" + layer.name) if PruneRegistry.supports(layer) else layer.name)
        inner = getattr(twin, "layer", twin)
        inner.set_weights(layer.get_weights())
    return pruned


def pruning_schedule(spec: PruningSpec, total_steps: int) -> sparsity.PruningSchedule:
    """Steps count from the start of the pruning fine-tuning. Without an explicit end_step
    the target is reached after two thirds of the fine-tuning (rounded to a multiple of the
    frequency, since tfmot only updates masks on those steps) so the last third recovers
    accuracy at the final sparsity."""
    freq = min(spec.frequency, max(1, total_steps // 4))
    if spec.end_step is not None:
        end = spec.end_step
    else:
        span = max(freq, (2 * (total_steps - spec.begin_step) // 3) // freq * freq)
        end = spec.begin_step + span
    if spec.schedule == "constant":
        return sparsity.ConstantSparsity(spec.target_sparsity, begin_step=spec.begin_step, end_step=end, frequency=freq)
    return sparsity.PolynomialDecay(
        initial_sparsity=spec.initial_sparsity,
        final_sparsity=spec.target_sparsity,
        begin_step=spec.begin_step,
        end_step=end,
        frequency=freq,
    )


class Pruning(FineTuning[PruningSpec]):
    """tfmot's prune_low_magnitude on every prunable layer, UpdatePruningStep while fine-tuning,
    strip_pruning after: the stripped kernels hold `target_sparsity` zeros."""

    spec_type = PruningSpec
    keeps = frozenset({SPARSITY})

    def label(self, spec: PruningSpec) -> str:
        return f"pruning to {spec.target_sparsity:.0%} ({spec.schedule})"

    def apply(self, model: keras.Model, spec: PruningSpec, context: PhaseContext) -> Applied:
        spe = context.steps_per_epoch
        schedule = pruning_schedule(spec, spe * spec.fine_tuning_epochs(spe))
        return Applied(base=model, model=prune_supported(model, schedule), callbacks=[sparsity.UpdatePruningStep()])

    def strip(self, applied: Applied) -> keras.Model:
        """Plain layers holding the pruned (zeroed) weights."""
        return sparsity.strip_pruning(applied.model)
