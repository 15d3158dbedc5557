"""A sweep point that breaks a rule is refused naming the grid axis that broke it, in the rule's
own words (not pydantic's "Value error, " prefix)."""

from __future__ import annotations

from typing import Any

import pytest

from runspec.sweeps import SweepError, SweepIn, expand


def _error(grid: dict[str, list[Any]]) -> SweepError:
    sweep = SweepIn.model_validate({"base": {"techniques": [{"name": "qat"}]}, "grid": grid})
    with pytest.raises(SweepError) as info:
        expand(sweep)
    return info.value


def test_a_rule_across_fields_names_the_only_axis_and_keeps_its_words() -> None:
    err = _error({"kind": ["train", "optimize"]})
    assert err.loc == ("body", "grid", "kind")
    assert err.msg == "parent_run_id is required for an optimize run"


def test_a_rule_on_the_axis_field_is_not_prefixed_twice() -> None:
    err = _error({"training.epochs": [0]})
    assert err.loc == ("body", "grid", "training.epochs")
    assert err.msg.startswith("training.epochs must be at least 1")
    assert "Value error" not in err.msg


def test_a_field_constraint_names_the_field() -> None:
    err = _error({"training.epochs": [2, -1]})
    assert err.loc == ("body", "grid", "training.epochs")
    assert err.msg == "training.epochs: Input should be greater than or equal to 0"
