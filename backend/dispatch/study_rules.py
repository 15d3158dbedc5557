"""The study's two stopping rules and its hypervolume: pure functions of numbers (issue 20).

Hypervolume (2-D), in the coordinates compression work reports. A feasible trial's point is

    x = log10(c_ref / c)    (decades of compression of the cost objective, maximised)
    y = m − bar             (the constraint metric's margin over the bar, a fraction, ≥ 0)

with c the trial's cost (bytes, gzip bytes, parameters or latency ms) and c_ref the baseline's
(its float32 .tflite figures). The reference point (0, 0) is the baseline's cost at the
constraint's accuracy, as issue 20 states. A point dominates the box [0, x] × [0, y]; the
hypervolume is the area of the union of those boxes, in "decades × accuracy above the bar"
(0.1 decades × 0.01 = a model 1.26× smaller than the baseline, 1 point above the bar). Why a log
axis: on the linear x = c ÷ c_ref the region near 0 is where the search ends up, and there a
model half the size of the best one adds almost no area (0.06 → 0.03 of the baseline moves x
by 0.03), so a 1 % plateau rule stopped a digits study whose later trials found an 18 %
smaller feasible model; on a log axis every halving adds the same 0.30 decades, wherever it
happens. Only feasible points count (infeasible, pruned and failed trials are None upstream);
points with x ≤ 0 (not smaller than the baseline) or y < 0 add nothing. Computed exactly by
sorting on x and sweeping with the running maximum of y (the 2-D case of the hypervolume
indicator: Zitzler & Thiele 1998; the sort-and-sweep algorithm e.g. in Fonseca, Paquete &
López-Ibáñez 2006, "An improved dimension-sweep algorithm for the hypervolume indicator").

Trial pruning (a trial that can no longer reach the bar). After at least `min_epochs` epochs
with validation accuracies a_1..a_k, and e remaining epochs, the optimistic final accuracy is

    bound = max(a_1..a_k) + e · g + margin,    g = max(0, max_i (a_i − a_{i−1}))

i.e. the best accuracy seen so far plus, for every remaining epoch, the largest one-epoch gain
the trial has shown. Under the usual assumption that learning curves have diminishing returns
(per-epoch gains do not grow; the saturating curve families of Domhan, Springenberg & Hutter
2015, "Speeding up automatic hyperparameter optimization ... by extrapolation of learning
curves"), the final accuracy cannot exceed max(a) + e · g; `margin` covers the gap between
validation and test accuracy. The trial is pruned when bound < bar. The remaining epochs come
from the run's progress p (the fraction of its planned steps done): e = k · (1 − p) / p.

Study stopping. With H_n the hypervolume after the n-th told trial (in the order they were
told), the study stops when n ≥ min_trials, n > K, H_n > 0 and H_n − H_{n−K} ≤ ε · H_n: the
last K trials improved the hypervolume by at most the fraction ε. A study with no feasible
point (H_n = 0) never stops early: it runs to its budget, so the closest miss is found. The
defaults scale with the trial budget B (runspec.studies.StudySpec.stop_min_trials and
stop_patience): min_trials = max(10, ⌈B/2⌉) and K = max(10, 2 × NSGA-II population), the
population being max(4, min(50, ⌊B/4⌋)); for B = 30: min_trials 15, K 14.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def hypervolume_2d(points: Sequence[tuple[float, float]]) -> float:
    """The area dominated by `points` (x = decades of compression, y = metric − bar, both
    maximised; module docstring) from the reference point (0, 0); 0.0 for no point beyond it."""
    inside = sorted(
        ((x, y) for x, y in points if math.isfinite(x) and math.isfinite(y) and x > 0.0 and y > 0.0), reverse=True
    )
    area, best_y = 0.0, 0.0
    for i, (x, y) in enumerate(inside):
        best_y = max(best_y, y)
        next_x = inside[i + 1][0] if i + 1 < len(inside) else 0.0
        area += (x - next_x) * best_y
    return area


def hypervolume_history(points: Sequence[tuple[float, float] | None]) -> list[float]:
    """H_1..H_n: the hypervolume after each told trial (None for a trial without a point:
    pruned, failed or infeasible trials leave it unchanged)."""
    seen: list[tuple[float, float]] = []
    out = []
    for p in points:
        if p is not None:
            seen.append(p)
        out.append(hypervolume_2d(seen))
    return out


def optimistic_final_accuracy(curve: Sequence[float], *, progress: float, margin: float) -> float:
    """max(curve) + e · g + margin (module docstring), capped at 1.0; `curve` holds per-epoch
    validation accuracies (fractions), `progress` the run's fraction of planned steps done."""
    gain = max([0.0, *(b - a for a, b in zip(curve, curve[1:], strict=False))])
    remaining = remaining_epochs(curve, progress=progress)
    bound = max(curve) + (remaining * gain if gain > 0 else 0.0) + margin
    return min(1.0, bound)


def remaining_epochs(curve: Sequence[float], *, progress: float) -> float:
    """e = k · (1 − p) / p (module docstring): the epochs the run still has to train."""
    return len(curve) * (1.0 - progress) / progress if progress > 0 else math.inf


def cannot_reach(curve: Sequence[float], *, progress: float, bar: float, margin: float, min_epochs: int) -> str | None:
    """Why a running trial cannot reach `bar` (its optimistic final accuracy is below it), or
    None while it still might, has run fewer than `min_epochs` epochs, or has less than one
    epoch left (stopping it then saves nothing but its export, and would throw away a model
    whose measured figures the study can still use)."""
    if len(curve) < min_epochs or remaining_epochs(curve, progress=progress) < 1.0:
        return None
    bound = optimistic_final_accuracy(curve, progress=progress, margin=margin)
    if bound >= bar:
        return None
    return (
        f"pruned-infeasible after {len(curve)} epochs: best validation accuracy {max(curve):.4f}, "
        f"optimistic final {bound:.4f} < bar {bar:.4f}"
    )


def should_stop(history: Sequence[float], *, min_trials: int, patience: int, min_improvement: float) -> bool:
    """The study-stopping rule of the module docstring on H_1..H_n."""
    n = len(history)
    if n < min_trials or n <= patience:
        return False
    last, before = history[-1], history[-1 - patience]
    return last > 0 and last - before <= min_improvement * last
