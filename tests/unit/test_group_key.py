"""runspec.groups: which specs are one seed group, and what repeats submit."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from runspec.groups import EXCLUDED_FROM_GROUP_KEY, group_key, seed_repeats
from runspec.spec import RunSpec
from runspec.sweeps import SweepError, SweepIn, expand


def spec(**fields: object) -> RunSpec:
    return RunSpec.model_validate({"name": "a", **fields})


def test_seeds_and_labels_do_not_change_the_group() -> None:
    base = spec(training={"seed": 0, "epochs": 2}, dataset={"seed": 0})
    same = spec(
        name="another name",
        experiment="elsewhere",
        tags=["x"],
        notes="n",
        repeats=5,
        training={"seed": 41, "epochs": 2},
        dataset={"seed": 7},
    )
    assert group_key(base) == group_key(same)
    assert len(group_key(base)) == 64 and set(group_key(base)) <= set("0123456789abcdef")
    assert {p[0] for p in EXCLUDED_FROM_GROUP_KEY} == {
        "name",
        "tags",
        "notes",
        "experiment",
        "repeats",
        "control",
        "training",
        "dataset",
    }
    # asking for a same-budget control along with a run does not change what the run does
    pruned = {"techniques": [{"name": "pruning"}]}
    assert group_key(spec(**pruned)) == group_key(spec(**pruned, control=True))


@pytest.mark.parametrize(
    "change",
    [
        {"training": {"epochs": 5}},
        {"training": {"optimizer": {"learning_rate": 0.01}}},
        {"training": {"batch_size": 64}},
        {"dataset": {"validation_split": 0.2}},
        {"dataset": {"name": "mnist"}},
        {"model": {"width_multiplier": 0.5}},
        {"techniques": [{"name": "pruning", "target_sparsity": 0.5}]},
        {"exports": ["float32", "int8"]},
        {"measurement": {"protocol": "quick"}},
    ],
)
def test_anything_but_seeds_and_labels_is_another_group(change: dict) -> None:
    assert group_key(spec()) != group_key(spec(**change))


def test_a_stored_dict_groups_like_the_spec_and_a_missing_default_field_too() -> None:
    s = spec(training={"seed": 3})
    stored = s.model_dump(mode="json")
    del stored["repeats"]  # a spec stored before the field existed
    del stored["measurement"]["max_cv"]
    assert group_key(stored) == group_key(s)
    assert group_key({"not": "a spec"}) == group_key({"not": "a spec"})  # invalid: hashed as it is


def test_repeats_are_consecutive_training_seeds_in_one_group() -> None:
    s = spec(repeats=3, training={"seed": 10}, dataset={"seed": 4})
    runs = seed_repeats(s)
    assert [r.training.seed for r in runs] == [10, 11, 12]
    assert [r.dataset.seed for r in runs] == [4, 4, 4]  # the split stays the same
    assert [r.repeats for r in runs] == [1, 1, 1]
    assert [r.name for r in runs] == ["a [seed=10]", "a [seed=11]", "a [seed=12]"]
    assert {group_key(r) for r in runs} == {group_key(s)}
    assert seed_repeats(spec()) == [spec()]


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"repeats": 0}, ("repeats",)),
        ({"repeats": 21}, ("repeats",)),
        ({"repeats": 3, "training": {"seed": 2**31 - 2}}, ("repeats",)),
        ({"repeats": 2, "external": True}, ("repeats",)),
    ],
)
def test_bad_repeats_name_the_field(fields: dict, loc: tuple) -> None:
    with pytest.raises(ValidationError) as e:
        spec(**fields)
    err = e.value.errors()[0]
    assert tuple(err["loc"])[: len(loc)] == loc or "repeats" in err["msg"]


def test_a_sweep_counts_its_repeats_against_the_run_limit() -> None:
    sweep = SweepIn.model_validate({"base": {"repeats": 20}, "grid": {"training.epochs": list(range(1, 27))}})
    with pytest.raises(SweepError) as e:
        expand(sweep)
    assert e.value.loc == ("body", "base", "repeats")
    seeds = SweepIn.model_validate({"base": {}, "grid": {"training.seed": [0, 1, 2]}})
    assert len({group_key(s) for _, s in expand(seeds)}) == 1  # a seed axis is one group too
