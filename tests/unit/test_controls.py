"""Same-budget controls (issue 19 item 2): the `control` rule of the spec and the twin's spec."""

from __future__ import annotations

import typing
from typing import Any

import pytest
from pydantic import ValidationError

from runspec.controls import control_spec
from runspec.spec import FINE_TUNING_TECHNIQUES, FineTuningSpec, RunSpec, recovery_epochs
from runspec.spec import Technique as TechniqueSpec

TEACHER = {"name": "distillation", "teacher_run_id": 7, "temperature": 3.0}


def spec(**overrides: Any) -> RunSpec:
    base: dict[str, Any] = {
        "name": "prune-80",
        "experiment": "controls",
        "dataset": {"name": "digits", "seed": 3},
        "training": {"optimizer": {"name": "adam", "learning_rate": 0.002}, "epochs": 4, "seed": 11},
        "exports": ["float32", "int8"],
        "tags": ["a"],
        "control": True,
    }
    return RunSpec.model_validate({**base, **overrides})


def fields(e: pytest.ExceptionInfo[ValidationError]) -> list[str]:
    """The field each error names: a SpecError's own (the API appends it to the location)."""
    return [getattr((err.get("ctx") or {}).get("error"), "field", "") for err in e.value.errors()]


# --- validation ---------------------------------------------------------------------------


def test_control_defaults_to_false() -> None:
    assert RunSpec().control is False


@pytest.mark.parametrize(
    "overrides",
    [
        {"techniques": []},  # nothing to control for
        {"techniques": [{"name": "fine_tuning", "epochs": 2}]},  # already its own control
        {"kind": "optimize", "parent_run_id": 3, "techniques": []},
        {"external": True, "techniques": [{"name": "pruning"}]},
    ],
)
def test_control_is_refused_naming_the_field_without_a_technique_to_control(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as e:
        spec(**overrides)
    assert fields(e) == ["control"]
    assert "control needs a train run" in str(e.value)


def test_fine_tuning_may_repeat_in_a_chain_other_techniques_may_not() -> None:
    ok = spec(techniques=[{"name": "fine_tuning", "epochs": 1}, {"name": "fine_tuning", "epochs": 2}], control=False)
    assert [t.name for t in ok.techniques] == ["fine_tuning", "fine_tuning"]
    with pytest.raises(ValidationError, match="appears more than once"):
        spec(techniques=[{"name": "pruning"}, {"name": "pruning"}])


def test_fine_tuning_defaults_are_prunings() -> None:
    ft = FineTuningSpec(name="fine_tuning")
    assert ft.fine_tuning_epochs(100) == recovery_epochs(100) == 10
    assert ft.fine_tuning_epochs(2000) == 2  # at least PRUNING_MIN_EPOCHS
    assert ft.fine_tuning_rate(0.003) == 0.003


# --- the twin ------------------------------------------------------------------------------


def test_pruning_default_epochs_are_mirrored_not_guessed() -> None:
    run = spec(techniques=[{"name": "pruning", "target_sparsity": 0.8}])
    twin = control_spec(run)
    (ft,) = twin.techniques
    assert isinstance(ft, FineTuningSpec)
    # left unset: the worker resolves both from the same steps per epoch
    assert ft.epochs is None and ft.learning_rate is None
    for spe in (1, 34, 100, 469, 5000):
        assert ft.fine_tuning_epochs(spe) == run.techniques[0].fine_tuning_epochs(spe)
        assert ft.fine_tuning_rate(0.002) == run.techniques[0].fine_tuning_rate(0.002)


def test_pruning_explicit_epochs_and_rate_are_copied() -> None:
    twin = control_spec(spec(techniques=[{"name": "pruning", "epochs": 3, "learning_rate": 5e-4}]))
    assert twin.techniques[0].model_dump() == {"name": "fine_tuning", "epochs": 3, "learning_rate": 5e-4}


def test_qat_default_rate_is_resolved_to_a_tenth_of_the_training_rate() -> None:
    twin = control_spec(spec(techniques=[{"name": "qat", "epochs": 2}]))
    (ft,) = twin.techniques
    assert ft.epochs == 2
    assert ft.learning_rate == pytest.approx(0.0002)  # 0.1 × training.optimizer.learning_rate
    assert control_spec(spec(techniques=[{"name": "qat", "learning_rate": 1e-5}])).techniques[0].learning_rate == 1e-5


def test_clustering_becomes_fine_tuning_of_its_epochs_and_rate() -> None:
    twin = control_spec(spec(techniques=[{"name": "clustering", "number_of_clusters": 8, "epochs": 3}]))
    assert twin.techniques[0].model_dump() == {"name": "fine_tuning", "epochs": 3, "learning_rate": pytest.approx(2e-4)}


def test_distillation_is_removed_the_student_trains_from_scratch() -> None:
    run = spec(model={"architecture": "seed_cnn", "width_multiplier": 0.5}, techniques=[TEACHER])
    twin = control_spec(run)
    assert twin.techniques == []
    assert twin.model == run.model and twin.training == run.training  # same student, options, epochs


def test_a_chain_keeps_its_order_and_each_phase_budget() -> None:
    run = spec(
        techniques=[
            TEACHER,
            {"name": "pruning", "epochs": 2},
            {"name": "clustering", "number_of_clusters": 16},
            {"name": "qat", "epochs": 1, "learning_rate": 1e-4},
        ]
    )
    twin = control_spec(run)
    assert [t.model_dump() for t in twin.techniques] == [
        {"name": "fine_tuning", "epochs": 2, "learning_rate": None},
        {"name": "fine_tuning", "epochs": 1, "learning_rate": pytest.approx(2e-4)},
        {"name": "fine_tuning", "epochs": 1, "learning_rate": 1e-4},
    ]
    total = sum(t.fine_tuning_epochs(34) for t in twin.techniques)
    assert total == sum(t.fine_tuning_epochs(34) for t in run.techniques[1:])


def test_everything_else_is_the_runs_own() -> None:
    run = spec(techniques=[{"name": "pruning"}])
    twin = control_spec(run)
    assert twin.name == "prune-80 (control)" and twin.control is False
    mine, theirs = run.model_dump(), twin.model_dump()
    for key in ("name", "techniques", "control"):
        mine.pop(key), theirs.pop(key)
    assert mine == theirs  # dataset, model, training (seeds too), exports, measurement, tags
    assert twin.training.seed == 11 and twin.dataset.seed == 3


def test_a_long_name_keeps_its_suffix_within_the_limit() -> None:
    twin = control_spec(spec(name="x" * 200, techniques=[{"name": "qat"}]))
    assert len(twin.name) == 200 and twin.name.endswith(" (control)")


def test_every_fine_tuning_technique_is_replaced_in_its_control() -> None:
    """A technique spec with its own fine-tuning recipe is in FINE_TUNING_TECHNIQUES, so its
    control fine-tunes plainly instead of keeping the technique (and measuring no effect)."""
    members = typing.get_args(typing.get_args(TechniqueSpec)[0])
    fine_tuning = {
        m.model_fields["name"].annotation.__args__[0]
        for m in members
        if hasattr(m, "fine_tuning_rate") and m is not FineTuningSpec
    }
    assert fine_tuning == set(FINE_TUNING_TECHNIQUES)
    for name in sorted(fine_tuning):
        twin = control_spec(spec(techniques=[{"name": name}]))
        assert [t.name for t in twin.techniques] == ["fine_tuning"]
