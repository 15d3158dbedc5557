"""The Pareto front of (smaller x, higher y): models no other model beats on both axes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from backend.figures.text import finite


def pareto_front(
    rows: Sequence[Mapping[str, Any]], x: str = "size_bytes", y: str = "accuracy"
) -> list[Mapping[str, Any]]:
    """Rows on the front, sorted by x ascending (rows missing x or y are never on it).

    A row is dominated when another row has x <= and y >= with at least one strict. Exact
    duplicates do not dominate each other, so both stay on the front.
    """
    points = [(finite(r.get(x)), finite(r.get(y)), r) for r in rows]
    valid = [(px, py, r) for px, py, r in points if px is not None and py is not None]
    # Sort by x ascending, then y descending: a point is on the front iff its y beats every
    # y seen before it at a strictly smaller x (or ties the best at the same x and y).
    valid.sort(key=lambda p: (p[0], -p[1]))
    front: list[Mapping[str, Any]] = []
    best_y = float("-inf")
    best_at: tuple[float, float] | None = None
    for px, py, row in valid:
        if py > best_y:
            front.append(row)
            best_y = py
            best_at = (px, py)
        elif best_at is not None and (px, py) == best_at:
            front.append(row)  # an exact duplicate of the last front point
    return front


def pareto_flags(rows: Sequence[Mapping[str, Any]], x: str = "size_bytes", y: str = "accuracy") -> list[bool]:
    """For each row, whether it is on the front (same order as rows)."""
    on_front = {id(r) for r in pareto_front(rows, x, y)}
    return [id(r) in on_front for r in rows]
