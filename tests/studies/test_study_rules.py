"""The hypervolume and both stopping rules on numbers that can be checked by hand."""

from __future__ import annotations

import math

import pytest

from backend.dispatch.study_rules import (
    cannot_reach,
    hypervolume_2d,
    hypervolume_history,
    optimistic_final_accuracy,
    should_stop,
)


def test_one_point_is_its_box() -> None:
    # box [0.25, 1] x [0.90, 0.95]: 0.75 * 0.05
    assert hypervolume_2d([(0.25, 0.95)], bar=0.90) == pytest.approx(0.0375)


def test_two_points_union_not_sum() -> None:
    # (0.2, 0.92) and (0.5, 0.96), bar 0.9: [0.2,0.5]x0.02 + [0.5,1]x0.06 = 0.006 + 0.03
    assert hypervolume_2d([(0.5, 0.96), (0.2, 0.92)], bar=0.90) == pytest.approx(0.036)


def test_dominated_and_outside_points_add_nothing() -> None:
    base = hypervolume_2d([(0.2, 0.95)], bar=0.9)
    assert hypervolume_2d([(0.2, 0.95), (0.3, 0.93)], bar=0.9) == pytest.approx(base)  # dominated
    assert hypervolume_2d([(0.2, 0.95), (1.2, 0.99), (0.1, 0.89)], bar=0.9) == pytest.approx(base)  # beyond ref
    assert hypervolume_2d([], bar=0.9) == 0.0
    assert hypervolume_2d([(math.nan, 0.95)], bar=0.9) == 0.0


def test_history_steps_only_on_new_front_points() -> None:
    h = hypervolume_history([None, (0.5, 0.95), None, (0.5, 0.94), (0.25, 0.95)], bar=0.9)
    assert h[0] == 0.0
    assert h[1] == pytest.approx(0.025)
    assert h[2] == h[3] == pytest.approx(0.025)
    assert h[4] == pytest.approx(0.0375)


def test_optimistic_bound_is_best_plus_remaining_times_largest_gain() -> None:
    # gains 0.10, 0.05 -> g = 0.10; 3 epochs at progress 0.5 -> 3 epochs left; best 0.75
    assert optimistic_final_accuracy([0.60, 0.70, 0.75], progress=0.5, margin=0.01) == pytest.approx(
        0.75 + 3 * 0.10 + 0.01 if 0.75 + 0.31 < 1 else 1.0
    )
    # a falling curve: no gain, the bound is the best so far plus the margin
    assert optimistic_final_accuracy([0.80, 0.70], progress=0.5, margin=0.01) == pytest.approx(0.81)


def test_a_trial_is_pruned_only_when_even_the_bound_misses_the_bar() -> None:
    flat_low = [0.50, 0.50, 0.50]
    assert cannot_reach(flat_low, progress=0.5, bar=0.9, margin=0.01, min_epochs=2) is not None
    assert "0.5100 < bar 0.9000" in (cannot_reach(flat_low, progress=0.5, bar=0.9, margin=0.01, min_epochs=2) or "")
    rising = [0.50, 0.70]  # gain 0.2 per epoch, 2 epochs left at progress 0.5: bound 1.0
    assert cannot_reach(rising, progress=0.5, bar=0.9, margin=0.01, min_epochs=2) is None
    assert cannot_reach([0.1], progress=0.1, bar=0.9, margin=0.0, min_epochs=2) is None  # too early
    near = [0.89, 0.885]
    assert cannot_reach(near, progress=0.9, bar=0.9, margin=0.01, min_epochs=2) is None  # 0.89 + 0.01 reaches


def test_study_stops_on_a_plateau_never_before_min_trials_or_without_a_front() -> None:
    plateau = [0.0, 0.1, 0.2, 0.3, 0.3, 0.3, 0.3]
    assert should_stop(plateau, min_trials=5, patience=3, min_improvement=0.01)
    assert not should_stop(plateau, min_trials=8, patience=3, min_improvement=0.01)
    assert not should_stop(plateau[:6], min_trials=5, patience=3, min_improvement=0.01)  # 0.3 - 0.2 > 1 %
    assert not should_stop([0.0] * 20, min_trials=5, patience=3, min_improvement=0.01)
    assert should_stop([0.3, 0.3, 0.3, 0.302], min_trials=1, patience=3, min_improvement=0.01)  # 0.7 % gain
