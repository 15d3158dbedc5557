"""A run's same-budget control: the run without its technique, trained for the same epochs.

A pruned or QAT model fine-tunes for epochs the baseline never got, so "pruned vs baseline"
mixes the technique's effect with the effect of extra training. The control trains the same
model for the same total epochs without the technique, so "technique vs control" is the
technique's effect net of extra training (issue 19 item 2). Pure: the API builds the twin at
submit, a bench builds it the same way.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

from runspec.spec import (
    FINE_TUNING_TECHNIQUES,
    DistillationSpec,
    FineTuningSpec,
    PruningSpec,
    RunSpec,
)


class FineTunes(Protocol):
    """A technique spec named in FINE_TUNING_TECHNIQUES: its own epochs (None: plain
    fine-tuning's default) and its resolved fine-tuning rate."""

    @property
    def epochs(self) -> int | None: ...

    def fine_tuning_rate(self, training_rate: float) -> float: ...


CONTROL_SUFFIX = " (control)"
NAME_MAX = 200  # runspec.spec.Name


def control_technique(t: FineTunes, training_rate: float) -> FineTuningSpec:
    """Plain fine-tuning with the technique's epochs and rate, resolved as the technique
    resolves them (runspec.spec): QAT's and clustering's default rate is FINE_TUNING_RATE_FACTOR
    × `training_rate` (the run's optimizer rate), so it is written out; pruning's defaults are
    fine_tuning's own (recovery_epochs of the steps per epoch, the training rate), so an unset
    value stays unset and the worker resolves both from the same data. Resolving pruning's epochs
    here would need the training-set size after limits and the validation split, which the
    worker computes (worker.engine.data) and an upload's stored info may not say exactly."""
    if isinstance(t, PruningSpec):
        return FineTuningSpec(name="fine_tuning", epochs=t.epochs, learning_rate=t.learning_rate)
    return FineTuningSpec(name="fine_tuning", epochs=t.epochs, learning_rate=t.fine_tuning_rate(training_rate))


def control_name(name: str) -> str:
    """`name` suffixed " (control)", the name cut so the whole fits the spec's 200 characters."""
    return name[: NAME_MAX - len(CONTROL_SUFFIX)] + CONTROL_SUFFIX


def control_spec(spec: RunSpec) -> RunSpec:
    """The control twin of `spec` (the API builds it for train runs with `control` set): every
    entry named in FINE_TUNING_TECHNIQUES (pruning, QAT, clustering) becomes
    `fine_tuning` of the same epochs and rate, a distillation entry is dropped (the same student
    trained from scratch on the labels for `training.epochs`, with the same training options),
    `fine_tuning` entries stay; dataset, model, training (seed included), exports and
    measurement are the same; the name is suffixed " (control)" and `control` is false.

    Raises pydantic.ValidationError only if the result breaks a rule the input kept (it cannot:
    the chain rules concern techniques the twin does not have)."""
    rate = spec.training.optimizer.learning_rate
    techniques: list[Any] = []
    for t in spec.techniques:
        if isinstance(t, DistillationSpec):
            continue
        # by name, so a fine-tuning technique added to runspec.spec (and to its
        # FINE_TUNING_TECHNIQUES) gets its control with no change here
        techniques.append(control_technique(cast(FineTunes, t), rate) if t.name in FINE_TUNING_TECHNIQUES else t)
    data = spec.model_dump(mode="json")
    data.update(
        name=control_name(spec.name),
        techniques=[t.model_dump(mode="json") for t in techniques],
        control=False,
    )
    return RunSpec.model_validate(data)
