"""pareto_front on crafted rows: smaller x and higher y win."""

from __future__ import annotations

import math

from backend.figures import pareto_front
from backend.figures.pareto import pareto_flags
from tests.figures.rows import crafted, row


def names(rows):
    return [r["run_name"] for r in rows]


def test_front_of_crafted_rows_sorted_by_x():
    assert names(pareto_front(crafted(), "size_bytes", "accuracy")) == ["small", "mid", "big"]


def test_flags_follow_row_order():
    flags = pareto_flags(crafted(), "size_bytes", "accuracy")
    assert flags == [True, True, True, False, False, False]


def test_equal_accuracy_at_larger_size_is_dominated_and_exact_duplicates_both_stay():
    rows = [
        row(1, "a", "keras", "b", 0.9, 100),
        row(2, "b", "keras", "b", 0.9, 100),
        row(3, "c", "keras", "b", 0.9, 101),
    ]
    assert names(pareto_front(rows, "size_bytes", "accuracy")) == ["a", "b"]


def test_missing_and_non_finite_values_are_never_on_the_front():
    rows = crafted() + [
        row(7, "no-size", "keras", "b", 0.99, None),
        row(8, "nan-acc", "keras", "b", math.nan, 10),
        row(9, "inf-size", "keras", "b", 0.999, math.inf),
        row(10, "api-nan", "keras", "b", "NaN", 5),  # the API spells NaN as a string
    ]
    assert names(pareto_front(rows, "size_bytes", "accuracy")) == ["small", "mid", "big"]


def test_front_depends_on_the_x_axis():
    rows = [
        row(1, "fast-big", "keras", "b", 0.95, 1000, p50=0.01),
        row(2, "slow-small", "keras", "b", 0.95, 10, p50=1.0),
    ]
    assert names(pareto_front(rows, "latency_p50_ms", "accuracy")) == ["fast-big"]
    assert names(pareto_front(rows, "size_bytes", "accuracy")) == ["slow-small"]


def test_empty_input():
    assert pareto_front([], "size_bytes", "accuracy") == []
