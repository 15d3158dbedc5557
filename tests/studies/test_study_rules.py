"""The hypervolume and both stopping rules on numbers that can be checked by hand."""

from __future__ import annotations

import math
from typing import Any

import pytest

from backend.dispatch.study_rules import (
    cannot_reach,
    hypervolume_2d,
    hypervolume_history,
    optimistic_final_accuracy,
    should_stop,
)


def test_one_point_is_its_box() -> None:
    # 10x smaller (1 decade), 5 points above the bar: box [0, 1] x [0, 0.05]
    assert hypervolume_2d([(1.0, 0.05)]) == pytest.approx(0.05)


def test_two_points_union_not_sum() -> None:
    # (1.0, 0.02) and (0.5, 0.06): [0.5, 1] x 0.02 + [0, 0.5] x 0.06 = 0.01 + 0.03
    assert hypervolume_2d([(0.5, 0.06), (1.0, 0.02)]) == pytest.approx(0.04)


def test_dominated_and_outside_points_add_nothing() -> None:
    base = hypervolume_2d([(1.0, 0.05)])
    assert hypervolume_2d([(1.0, 0.05), (0.7, 0.03)]) == pytest.approx(base)  # dominated
    # larger than the baseline (x < 0) or under the bar (y < 0): beyond the reference point
    assert hypervolume_2d([(1.0, 0.05), (-0.1, 0.09), (2.0, -0.01)]) == pytest.approx(base)
    assert hypervolume_2d([]) == 0.0
    assert hypervolume_2d([(math.nan, 0.05)]) == 0.0


def test_a_smaller_model_near_the_front_adds_area_on_the_log_axis() -> None:
    # The digits case of docs/results.md: 59 386 and 48 678 gzip bytes against a 300 000-byte
    # baseline, both 1 point above the bar. On the linear axis the smaller model moved x from
    # 0.198 to 0.162 of the baseline (3.6 % of the box's width); in decades it adds
    # log10(59 386 / 48 678) = 0.0864 decades to 0.7034, i.e. 12.3 % more area.
    old = hypervolume_2d([(math.log10(300_000 / 59_386), 0.01)])
    new = hypervolume_2d([(math.log10(300_000 / 59_386), 0.01), (math.log10(300_000 / 48_678), 0.01)])
    assert old == pytest.approx(0.007034, abs=1e-6)
    assert new / old - 1 == pytest.approx(0.1228, abs=1e-3)


def test_history_steps_only_on_new_front_points() -> None:
    h = hypervolume_history([None, (0.5, 0.05), None, (0.5, 0.04), (1.0, 0.05)])
    assert h[0] == 0.0
    assert h[1] == pytest.approx(0.025)
    assert h[2] == h[3] == pytest.approx(0.025)
    assert h[4] == pytest.approx(0.05)


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


def _told(values: list[float] | None, constraint_value: float | None, state: str = "complete") -> Any:
    from datetime import UTC, datetime

    from backend.store.studies import TrialRecord

    return TrialRecord(
        study_id=1,
        number=0,
        run_id=1,
        params={},
        sampler_attrs={},
        state=state,
        values=values,
        constraint_value=constraint_value,
        pruned_reason=None,
        worker_seconds=1.0,
        created_at=datetime.now(UTC),
        told_at=datetime.now(UTC),
    )


def test_a_trial_point_is_decades_of_compression_and_margin_over_the_bar() -> None:
    from backend.dispatch.studies import trial_point
    from runspec.studies import StudySpec

    reference = {"accuracy": 0.95, "gzip_bytes": 200_000, "latency_p50_ms": 2.0}
    gzip = StudySpec(baseline_run_id=1)  # gzip bytes and accuracy, bar 0.94
    x, y = trial_point(gzip, reference, _told([20_000.0, 0.96], -0.02)) or (0.0, 0.0)
    assert (x, y) == (pytest.approx(1.0), pytest.approx(0.02))  # 10x smaller: one decade
    assert trial_point(gzip, reference, _told([20_000.0, 0.93], 0.01)) is None  # under the bar
    assert trial_point(gzip, reference, _told(None, None, state="pruned")) is None
    # A latency objective uses the baseline's latency; the metric comes from the constraint
    # value when accuracy is not an objective (bar − metric = −0.005 → 0.945).
    latency = StudySpec(baseline_run_id=1, objectives=["latency_p50_ms"])
    x, y = trial_point(latency, reference, _told([0.5], -0.005)) or (0.0, 0.0)
    assert (x, y) == (pytest.approx(math.log10(4)), pytest.approx(0.005))
