"""The technique registry: one technique per technique spec type, and a clear error otherwise."""

from __future__ import annotations

import typing
from typing import Literal

import pytest

from runspec.spec import RunSpec, Strict
from runspec.spec import Technique as TechniqueSpec
from worker.engine.techniques.base import Technique
from worker.engine.techniques.registry import REGISTRY, UnknownTechnique, _by_spec_type, technique_for


def _spec_types() -> list[type]:
    """The members of the spec's discriminated union (runspec.spec.Technique)."""
    union = typing.get_args(TechniqueSpec)[0]
    return list(typing.get_args(union))


def test_every_technique_spec_type_has_exactly_one_registered_technique() -> None:
    spec_types = _spec_types()
    assert len(spec_types) >= 4
    assert set(REGISTRY) == set(spec_types)
    for spec_type in spec_types:
        technique = REGISTRY[spec_type]
        assert isinstance(technique, Technique) and technique.spec_type is spec_type
        assert sum(1 for t in REGISTRY.values() if t.spec_type is spec_type) == 1


def test_every_spec_of_a_run_finds_its_technique() -> None:
    spec = RunSpec.model_validate(
        {
            "techniques": [
                {"name": "distillation", "teacher_run_id": 1},
                {"name": "pruning"},
                {"name": "clustering"},
                {"name": "qat"},
            ]
        }
    )
    found = [technique_for(t) for t in spec.techniques]
    assert [type(t).__name__ for t in found] == ["Distillation", "Pruning", "Clustering", "QAT"]
    # only the first may replace base training, and its epochs are training.epochs
    assert [t.replaces_training for t in found] == [True, False, False, False]
    # pruning's default fine-tuning is at least 1000 steps (10 epochs of 100 batches), QAT and
    # clustering one epoch at a tenth of the training rate (runspec.spec's defaults)
    assert [t.fine_tune_epochs(s, 100) for t, s in zip(found, spec.techniques, strict=True)] == [0, 10, 1, 1]
    assert [t.learning_rate(s, 1e-3) for t, s in zip(found, spec.techniques, strict=True)] == pytest.approx(
        [1e-3, 1e-3, 1e-4, 1e-4]
    )


def test_an_unknown_spec_type_raises_a_clear_error() -> None:
    class SparseGPTSpec(Strict):
        name: Literal["sparsegpt"] = "sparsegpt"

    registered = ", ".join(sorted(t.__name__ for t in _spec_types()))
    with pytest.raises(UnknownTechnique) as raised:
        technique_for(SparseGPTSpec())
    assert str(raised.value) == f"no technique is registered for SparseGPTSpec (registered: {registered})"
    assert issubclass(UnknownTechnique, LookupError)


def test_a_subclass_of_a_registered_spec_is_not_silently_run() -> None:
    """Lookup is by exact type: a spec type that merely extends another one needs its own entry."""
    pruning_type = _spec_types()[0]

    class Extended(pruning_type):  # type: ignore[misc, valid-type]
        pass

    with pytest.raises(UnknownTechnique, match="Extended"):
        technique_for(Extended.model_construct())


def test_registering_two_techniques_for_one_spec_type_is_refused() -> None:
    technique = next(iter(REGISTRY.values()))
    with pytest.raises(ValueError, match=f"two techniques registered for {technique.spec_type.__name__}"):
        _by_spec_type([technique, type(technique)()])
