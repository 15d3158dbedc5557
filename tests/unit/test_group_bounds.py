"""A group's interval never claims an impossible value: latencies, sizes and counts are cut at 0,
fractions (accuracy, F1) at 0 and 1; differences and the half-width stay as computed."""

from __future__ import annotations

import pytest

from backend.store.groups import _stat_columns
from backend.store.intervals import mean_interval


def test_a_noisy_latency_interval_stops_at_zero() -> None:
    cols = _stat_columns("latency_p90_ms", [0.1, 0.2, 3.6])
    raw = mean_interval([0.1, 0.2, 3.6])
    assert raw.ci_low is not None and raw.ci_low < 0
    assert cols["latency_p90_ms_ci_low"] == 0.0 and cols["latency_p90_ms_ci_high"] == pytest.approx(raw.ci_high)
    assert cols["latency_p90_ms_half_width"] == pytest.approx(raw.half_width)


def test_an_accuracy_interval_stays_within_zero_and_one() -> None:
    cols = _stat_columns("accuracy", [0.1, 0.5, 0.99])
    assert cols["accuracy_ci_low"] == 0.0 and cols["accuracy_ci_high"] == 1.0


def test_a_difference_against_the_control_may_be_negative() -> None:
    cols = _stat_columns("vs_control_accuracy", [-0.05, -0.04, -0.045])
    assert cols["vs_control_accuracy_ci_low"] < -0.045 < cols["vs_control_accuracy_ci_high"] < 0


def test_external_runs_of_one_spec_are_separate_draws_but_a_rerun_seed_is_not() -> None:
    """Seed dedupe reads the spec's training seed; an external run's spec carries the default
    seed, not its script's, so each external run counts on its own."""
    from backend.store.groups import group_rows

    def run(i: int, *, external: bool, seed: int = 0) -> dict:
        return {"id": i, "name": f"r{i}", "group_key": "g", "external": external, "spec": {"training": {"seed": seed}}}

    def row(i: int, acc: float) -> dict:
        return {"run_id": i, "variant_id": i, "format": "keras", "accuracy": acc}

    external = [run(1, external=True), run(2, external=True), run(3, external=True)]
    rows, _ = group_rows([row(1, 0.8), row(2, 0.9), row(3, 0.85)], external)
    assert rows[0]["n_runs"] == 3 and rows[0]["superseded_run_ids"] == []
    rerun = [run(4, external=False), run(5, external=False, seed=1), run(6, external=False)]
    rows, _ = group_rows([row(4, 0.8), row(5, 0.9), row(6, 0.85)], rerun)
    assert rows[0]["n_runs"] == 2 and rows[0]["superseded_run_ids"] == [4]
