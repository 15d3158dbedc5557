"""Confidence intervals of seed groups: the mean of n repeats, and a difference of two means.

Pure functions of lists of numbers (NaN and None are left out), computed in the store so every
reader (the API, the exports, the dashboard, the client) sees the same figures. Sources:

- Interval of a mean: x̄ ± t(1-α/2, n-1) · s/√n, s the sample standard deviation (n-1 in
  the denominator). NIST/SEMATECH e-Handbook of Statistical Methods, §7.2.2.1 "Confidence
  limits for the mean", https://www.itl.nist.gov/div898/handbook/prc/section2/prc221.htm
- Interval of a difference of means with unequal variances (Welch 1947, "The generalization of
  'Student's' problem when several different population variances are involved", Biometrika
  34): (x̄₁ - x̄₂) ± t(1-α/2, ν) · √(s₁²/n₁ + s₂²/n₂), with the Welch–Satterthwaite degrees of
  freedom ν = (s₁²/n₁ + s₂²/n₂)² / ((s₁²/n₁)²/(n₁-1) + (s₂²/n₂)²/(n₂-1)). NIST/SEMATECH
  e-Handbook §7.3.1 "Do two processes have the same mean?",
  https://www.itl.nist.gov/div898/handbook/prc/section3/prc31.htm

t quantiles come from scipy.stats.t.ppf.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

CONFIDENCE = 0.95


def _values(values: Iterable[float | int | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def _t_quantile(p: float, dof: float) -> float:
    """Student's t quantile (scipy.stats.t.ppf). scipy.stats is imported here, on the first
    interval, not with the module: its import costs ~1.5 s of CPU, which every API start and
    every test importing the app paid."""
    from scipy import stats  # type: ignore[import-untyped]

    return float(stats.t.ppf(p, dof))


@dataclass(frozen=True)
class MeanInterval:
    """The mean of `n` values with its two-sided CONFIDENCE interval (Student t, n-1 degrees of
    freedom). `std` is the sample standard deviation (ddof 1); `std`, `ci_low`, `ci_high` and
    `half_width` are None when n < 2 (one value has no interval); `mean` is None when n = 0.
    Units are the values' own (accuracy a fraction, sizes bytes, latencies ms)."""

    mean: float | None
    n: int
    std: float | None
    ci_low: float | None
    ci_high: float | None
    half_width: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def mean_interval(values: Iterable[float | int | None], confidence: float = CONFIDENCE) -> MeanInterval:
    """x̄ ± t(1-(1-confidence)/2, n-1) · s/√n over the finite values (NIST e-Handbook §7.2.2.1).

    >>> mean_interval([1.0, 2.0, 3.0]).half_width  # t(0.975, 2) = 4.3027, s = 1, √3
    2.4841377118...
    """
    xs = _values(values)
    n = len(xs)
    if n == 0:
        return MeanInterval(None, 0, None, None, None, None)
    mean = math.fsum(xs) / n
    if n == 1:
        return MeanInterval(mean, 1, None, None, None, None)
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    half = _t_quantile(1 - (1 - confidence) / 2, n - 1) * std / math.sqrt(n)
    return MeanInterval(mean, n, std, mean - half, mean + half, half)


@dataclass(frozen=True)
class Difference:
    """`mean_a - mean_b` with its CONFIDENCE interval by Welch's t (unequal variances).

    `interval` is "welch" when one was computed, "exact" when both groups have no spread (every
    value equal on both sides: the difference is known exactly, e.g. two file sizes), and
    "no interval" when either group has fewer than 2 values (nothing to estimate a spread from;
    `ci_low`/`ci_high`/`dof`/`significant` are then None). `significant` is whether the
    interval excludes 0. `dof` is the Welch–Satterthwaite degrees of freedom."""

    diff: float | None
    ci_low: float | None
    ci_high: float | None
    dof: float | None
    n_a: int
    n_b: int
    significant: bool | None
    interval: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def welch_difference(
    a: Iterable[float | int | None], b: Iterable[float | int | None], confidence: float = CONFIDENCE
) -> Difference:
    """The difference of means a - b with Welch's interval (NIST e-Handbook §7.3.1; Welch 1947).

    With n < 2 on either side there is no interval ("no interval"): one run says nothing of how
    much the next seed would move it, and inventing a spread would mislead.
    """
    xa, xb = _values(a), _values(b)
    na, nb = len(xa), len(xb)
    if na == 0 or nb == 0:
        return Difference(None, None, None, None, na, nb, None, "no interval")
    ma, mb = math.fsum(xa) / na, math.fsum(xb) / nb
    diff = ma - mb
    if na < 2 or nb < 2:
        return Difference(diff, None, None, None, na, nb, None, "no interval")
    va = math.fsum((x - ma) ** 2 for x in xa) / (na - 1) / na
    vb = math.fsum((x - mb) ** 2 for x in xb) / (nb - 1) / nb
    se2 = va + vb
    if se2 == 0.0:
        return Difference(diff, diff, diff, None, na, nb, diff != 0.0, "exact")
    dof = se2**2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    half = _t_quantile(1 - (1 - confidence) / 2, dof) * math.sqrt(se2)
    low, high = diff - half, diff + half
    return Difference(diff, low, high, dof, na, nb, low > 0.0 or high < 0.0, "welch")
