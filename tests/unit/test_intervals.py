"""backend.store.intervals against hand-checkable values (t quantiles from printed tables)."""

from __future__ import annotations

import math

import pytest

from backend.store.intervals import mean_interval, welch_difference

# Student t two-sided 95 % quantiles t(0.975, dof), e.g. NIST e-Handbook table 1.3.6.7.2
T975 = {1: 12.706, 2: 4.303, 4: 2.776, 9: 2.262, 19: 2.093}


@pytest.mark.parametrize("n", sorted(T975))
def test_mean_interval_is_mean_plus_minus_t_times_s_over_root_n(n: int) -> None:
    values = [float(i) for i in range(n + 1)]  # 0..n: mean n/2, s = sqrt((n+1)(n+2)/12)
    got = mean_interval(values)
    s = math.sqrt((n + 1) * (n + 2) / 12)
    assert got.n == n + 1 and got.mean == pytest.approx(n / 2)
    assert got.std == pytest.approx(s)
    assert got.half_width == pytest.approx(T975[n] * s / math.sqrt(n + 1), rel=1e-3)
    assert got.ci_low == pytest.approx(got.mean - got.half_width)
    assert got.ci_high == pytest.approx(got.mean + got.half_width)


def test_three_values_by_hand() -> None:
    # 1, 2, 3: mean 2, s 1, t(0.975, 2) = 4.3027 → 2 ± 2.484
    got = mean_interval([1, 2, 3])
    assert (round(got.ci_low, 3), round(got.ci_high, 3)) == (-0.484, 4.484)


def test_one_value_has_no_interval_and_none_and_nan_are_left_out() -> None:
    one = mean_interval([0.9, None, float("nan")])
    assert (one.mean, one.n, one.std, one.ci_low, one.ci_high, one.half_width) == (0.9, 1, None, None, None, None)
    assert mean_interval([]).mean is None and mean_interval([]).n == 0


def test_welch_by_hand() -> None:
    # a = 1, 2, 3 (s² 1), b = 4, 5, 6, 7 (s² 5/3): se² = 1/3 + 5/12 = 0.75, ν = 0.5625 /
    # ((1/3)²/2 + (5/12)²/3) = 4.959, t(0.975, 4.959) ≈ 2.577 → -3.5 ± 2.232
    d = welch_difference([1, 2, 3], [4, 5, 6, 7])
    assert d.diff == pytest.approx(-3.5)
    assert d.dof == pytest.approx(4.959, abs=1e-3)
    assert d.ci_low == pytest.approx(-5.732, abs=1e-3) and d.ci_high == pytest.approx(-1.268, abs=1e-3)
    assert d.significant is True and d.interval == "welch"


def test_welch_not_significant_when_the_interval_holds_zero() -> None:
    d = welch_difference([0.90, 0.92, 0.91], [0.91, 0.89, 0.93])
    assert d.ci_low < 0 < d.ci_high and d.significant is False


def test_n_of_one_on_either_side_is_no_interval() -> None:
    for a, b in (([0.9], [0.8, 0.82]), ([0.9, 0.91], [0.8])):
        d = welch_difference(a, b)
        assert d.interval == "no interval" and d.diff is not None
        assert (d.ci_low, d.ci_high, d.significant, d.dof) == (None, None, None, None)


def test_no_spread_on_both_sides_is_an_exact_difference() -> None:
    d = welch_difference([1000, 1000], [1200, 1200, 1200])
    assert d.interval == "exact" and d.diff == -200 and d.ci_low == d.ci_high == -200 and d.significant is True
