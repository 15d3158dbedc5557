"""A study's spec: defaults, validation errors that name the field, and the trial spec a
sampled recipe becomes."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from backend.api.errors import located_errors
from runspec.spec import RunSpec
from runspec.studies import StudySpec, trial_spec


def _locs(data: dict[str, Any]) -> list[tuple[Any, ...]]:
    with pytest.raises(ValidationError) as e:
        StudySpec.model_validate(data)
    return [tuple(err["loc"]) for err in located_errors(e.value.errors())]


def test_defaults_are_a_gzip_size_study_within_one_point() -> None:
    s = StudySpec(baseline_run_id=1)
    assert s.objectives == ["gzip_bytes", "accuracy"] and s.cost_objective == "gzip_bytes"
    assert s.constraint.bar(0.95) == pytest.approx(0.94)
    assert StudySpec(baseline_run_id=1, constraint={"max_drop": 2, "unit": "percent"}).constraint.bar(
        0.9
    ) == pytest.approx(0.882)
    assert s.strategy == "tpe" and s.budget.max_trials == 30


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        ({"objectives": ["accuracy"]}, ("objectives",)),
        ({"objectives": ["gzip_bytes", "gzip_bytes"]}, ("objectives",)),
        ({"objectives": ["bytes"]}, ("objectives", 0)),
        ({"strategy": "bayes"}, ("strategy",)),
        ({"budget": {"max_trials": None}}, ("budget", "max_trials")),
        ({"search_space": {"chains": ["pruning", "pruning"]}}, ("search_space", "chains")),
        ({"search_space": {"chains": ["quantum"]}}, ("search_space", "chains", 0)),
        (
            {"search_space": {"pruning": {"target_sparsity": {"low": 0.9, "high": 0.5}}}},
            ("search_space", "pruning", "target_sparsity", "high"),
        ),
        (
            {"search_space": {"qat": {"learning_rate": {"low": 0, "high": 0.1, "log": True}}}},
            ("search_space", "qat", "learning_rate", "low"),
        ),
        ({"constraint": {"max_drop": -1}}, ("constraint", "max_drop")),
        ({"measurement_protocol": "off", "objectives": ["latency_p50_ms"]}, ("measurement_protocol",)),
        ({"surprise": 1}, ("surprise",)),
    ],
)
def test_errors_name_the_field(data: dict[str, Any], loc: tuple[Any, ...]) -> None:
    assert loc in _locs({"baseline_run_id": 1, **data})


BASELINE = RunSpec.model_validate(
    {"name": "base", "dataset": {"name": "digits"}, "model": {"architecture": "seed_cnn"}, "training": {"epochs": 5}}
)


def test_a_technique_trial_fine_tunes_the_baseline() -> None:
    study = StudySpec(baseline_run_id=7, name="s")
    recipe = {
        "chain": "pruning+qat",
        "export": "int8",
        "pruning.target_sparsity": 0.9,
        "pruning.epochs": 2,
        "pruning.learning_rate": 1e-3,
        "qat.epochs": 1,
        "qat.learning_rate": 1e-4,
    }
    spec = trial_spec(study, study_id=3, number=4, baseline=BASELINE, recipe=recipe)
    assert spec.model.init_from_run_id == 7 and spec.training.epochs == 0
    assert [t.name for t in spec.techniques] == ["pruning", "qat"]
    assert spec.techniques[0].target_sparsity == 0.9 and spec.techniques[1].learning_rate == 1e-4  # type: ignore[union-attr]
    assert spec.exports == ["int8"] and spec.dataset == BASELINE.dataset
    assert spec.name == "s #4" and "study:3" in spec.tags
    assert spec.measurement.protocol == "quick"  # no latency objective


def test_a_distillation_trial_trains_a_fresh_student_taught_by_the_baseline() -> None:
    study = StudySpec(baseline_run_id=7, objectives=["latency_p50_ms", "accuracy"])
    recipe = {
        "chain": "distillation",
        "export": "float16",
        "distillation.width_multiplier": 0.5,
        "distillation.temperature": 3.0,
        "distillation.alpha": 0.2,
        "distillation.epochs": 4,
        "distillation.learning_rate": 2e-3,
    }
    spec = trial_spec(study, study_id=1, number=0, baseline=BASELINE, recipe=recipe)
    assert spec.model.init_from_run_id is None and spec.model.width_multiplier == 0.5
    assert spec.techniques[0].teacher_run_id == 7  # type: ignore[union-attr]
    assert spec.training.epochs == 4 and spec.training.optimizer.learning_rate == 2e-3
    assert spec.measurement.protocol == "full"


@pytest.mark.parametrize(
    ("budget", "min_trials", "patience"),
    [
        # B = 30: NSGA-II population 7, so two generations = 14; half the budget = 15
        ({"max_trials": 30}, 15, 14),
        ({"max_trials": 12}, 10, 10),  # small budgets keep the floor of 10
        ({"max_trials": 100}, 50, 50),  # population 25
        ({"max_trials": 1000}, 500, 100),  # population capped at 50
        ({"max_trials": None, "wall_seconds": 600}, 10, 50),  # no trial budget: population 25
    ],
)
def test_stopping_defaults_scale_with_the_trial_budget(budget: dict[str, Any], min_trials: int, patience: int) -> None:
    s = StudySpec(baseline_run_id=1, budget=budget)
    assert s.min_trials is None and s.early_stopping.patience_trials is None
    assert (s.stop_min_trials, s.stop_patience) == (min_trials, patience)


def test_given_stopping_settings_win_over_the_budget_rule() -> None:
    s = StudySpec(baseline_run_id=1, budget={"max_trials": 30}, min_trials=5, early_stopping={"patience_trials": 3})
    assert (s.stop_min_trials, s.stop_patience) == (5, 3)
    assert _locs({"baseline_run_id": 1, "min_trials": 0}) == [("min_trials",)]


def test_default_pruning_fine_tunes_at_least_two_epochs() -> None:
    space = StudySpec(baseline_run_id=1).search_space
    assert (space.pruning.epochs.low, space.pruning.epochs.high) == (2, 4)
