"""Magnitude pruning (tfmot): wrap, fine-tune with the step callback, strip before export."""

from __future__ import annotations

import tensorflow_model_optimization as tfmot
from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import PruneRegistry

from runspec.spec import PruningSpec
from worker.engine.techniques.base import SPARSITY, Applied, FineTuning, PhaseContext
from worker.engine.tfsetup import keras

sparsity = tfmot.sparsity.keras


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
    strip_pruning after: the stripped kernels hold `target_sparsity` zeros. Layers without
    weights that tfmot does not list are left as they are (the preflight's "fix")."""

    spec_type = PruningSpec
    keeps = frozenset({SPARSITY})

    def label(self, spec: PruningSpec) -> str:
        return f"pruning to {spec.target_sparsity:.0%} ({spec.schedule})"

    def apply(self, model: keras.Model, spec: PruningSpec, context: PhaseContext) -> Applied:
        spe = context.steps_per_epoch
        schedule = pruning_schedule(spec, spe * spec.fine_tuning_epochs(spe))
        skipped: list[str] = []

        def wrap(layer: keras.layers.Layer) -> keras.layers.Layer:
            # tfmot's documented pattern for pruning some layers (clone_model with a
            # clone_function): a layer PruneRegistry does not list and that has no weights
            # (Resizing, Rescaling, TFOpLambda) is reused as it is; any other goes to
            # prune_low_magnitude, which refuses an unsupported layer with weights by name.
            if not layer.trainable_weights and not PruneRegistry.supports(layer):
                skipped.append(layer.name)
                return layer
            return sparsity.prune_low_magnitude(layer, pruning_schedule=schedule)

        wrapped = keras.models.clone_model(model, clone_function=wrap)
        notes = [f"not pruned (no weights, not in tfmot's PruneRegistry): {', '.join(skipped)}"] if skipped else []
        return Applied(base=model, model=wrapped, callbacks=[sparsity.UpdatePruningStep()], notes=notes)

    def strip(self, applied: Applied) -> keras.Model:
        """Plain layers holding the pruned (zeroed) weights."""
        return sparsity.strip_pruning(applied.model)
