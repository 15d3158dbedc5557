"""Magnitude pruning (tfmot): wrap, fine-tune with the step callback, strip before export."""

from __future__ import annotations

import tensorflow_model_optimization as tfmot

from runspec.spec import PruningSpec
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
        return sparsity.ConstantSparsity(spec.target_sparsity, begin_step=spec.begin_step,
                                         end_step=end, frequency=freq)
    return sparsity.PolynomialDecay(
        initial_sparsity=spec.initial_sparsity, final_sparsity=spec.target_sparsity,
        begin_step=spec.begin_step, end_step=end, frequency=freq)


def apply_pruning(model: keras.Model, spec: PruningSpec, total_steps: int
                  ) -> tuple[keras.Model, list[keras.callbacks.Callback]]:
    """The model with prunable layers wrapped, and the callbacks its fit needs."""
    wrapped = sparsity.prune_low_magnitude(model, pruning_schedule=pruning_schedule(spec, total_steps))
    return wrapped, [sparsity.UpdatePruningStep()]


def strip_pruning(model: keras.Model) -> keras.Model:
    """Plain layers holding the pruned (zeroed) weights."""
    return sparsity.strip_pruning(model)
