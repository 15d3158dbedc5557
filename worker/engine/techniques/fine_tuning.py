"""Plain fine-tuning: the trained model trained on, with nothing wrapped.

The same-budget control of pruning, QAT and clustering (runspec.controls): the same epochs at
the same rate with the job's loss, so a technique run and its control differ only by the
technique. Works on any Keras model the other techniques take (built-in, zoo or uploaded).
"""

from __future__ import annotations

from runspec.spec import FineTuningSpec
from worker.engine.techniques.base import Applied, FineTuning, PhaseContext
from worker.engine.tfsetup import keras


class PlainFineTuning(FineTuning[FineTuningSpec]):
    """Fits a copy of the model (same layers and weights) for the spec's epochs at its rate;
    nothing to strip. A copy, not the model itself, as `apply` must leave its input unchanged."""

    spec_type = FineTuningSpec

    def label(self, spec: FineTuningSpec) -> str:
        return "plain fine-tuning"

    def apply(self, model: keras.Model, spec: FineTuningSpec, context: PhaseContext) -> Applied:
        copy = keras.models.clone_model(model)
        copy.set_weights(model.get_weights())
        return Applied(base=model, model=copy)
