"""Escaping and number helpers shared by the figure functions.

Plotly renders a pseudo-HTML subset (<b>, <a href>, <br>, entities) in trace names, hover
text, tick labels and titles, so every user-provided string is escaped before it reaches a
figure. Plotly decodes the entities again when drawing, so the user sees the literal text.
"""

from __future__ import annotations

import html
import math
from typing import Any


def esc(value: object) -> str:
    """A user-provided value as Plotly-safe text."""
    return html.escape("" if value is None else str(value), quote=True)


def finite(value: Any) -> float | None:
    """A number for a figure, or None for missing/NaN/inf (the API spells those as strings)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        return None  # "NaN", "Infinity", "-Infinity": a gap in the line, not a point
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def human_bytes(n: float | None) -> str:
    if n is None:
        return "–"
    units = ("B", "KiB", "MiB", "GiB", "TiB")  # divided by 1024: binary prefixes (IEC 80000-13)
    value = float(n)
    for unit in units:
        if abs(value) < 1024 or unit == units[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # unreachable; keeps type checkers content


def human_number(n: float | None, digits: int = 4) -> str:
    if n is None:
        return "–"
    return f"{n:.{digits}g}"
