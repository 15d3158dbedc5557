"""One look for every figure: fonts, grid, palette. Kept explicit (template "none") so a
figure's JSON stays small and does not depend on plotly.py's default template."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Okabe–Ito inspired, readable on white and distinguishable for common colour blindness.
PALETTE = (
    "#2563eb",
    "#e66100",
    "#1a9850",
    "#c2185b",
    "#7c3aed",
    "#0891b2",
    "#b45309",
    "#4b5563",
    "#65a30d",
    "#db2777",
)
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
GRID = "#e5e7eb"
AXIS_LINE = "#9ca3af"
TEXT = "#1f2937"


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def axis(title: str, **extra: Any) -> dict[str, Any]:
    return {
        "title": {"text": title, "font": {"size": 12}},
        "gridcolor": GRID,
        "linecolor": AXIS_LINE,
        "zeroline": False,
        "automargin": True,
        "ticks": "outside",
        "tickcolor": AXIS_LINE,
        **extra,
    }


def base_layout(title: str, **extra: Any) -> dict[str, Any]:
    return {
        "template": "none",
        "title": {"text": title, "x": 0, "xanchor": "left", "font": {"size": 14}},
        "font": {"family": FONT, "size": 12, "color": TEXT},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "margin": {"l": 56, "r": 16, "t": 40, "b": 48},
        "hoverlabel": {"font": {"family": FONT}},
        "legend": {"orientation": "h", "y": -0.2, "x": 0, "font": {"size": 11}},
        **extra,
    }


def empty_annotation(message: str) -> dict[str, Any]:
    """The explicit empty state drawn inside a figure with no data."""
    return {
        "text": message,
        "showarrow": False,
        "xref": "paper",
        "yref": "paper",
        "x": 0.5,
        "y": 0.5,
        "font": {"size": 13, "color": "#6b7280"},
    }


def _nice_steps(lo: float, hi: float, base: float) -> list[float]:
    """1-2-5 steps (in multiples of `base`) covering [lo, hi]; only the powers of ten when the
    range spans more than three decades, so labels never crowd."""
    import math

    lo_u, hi_u = lo / base, hi / base
    first, last = math.floor(math.log10(lo_u)), math.ceil(math.log10(hi_u))
    mantissas = (1,) if last - first > 3 else (1, 2, 5)
    return [m * 10.0**e * base for e in range(first, last + 1) for m in mantissas]


def log_ticks(values: Sequence[float | None], unit: str) -> dict[str, Any]:
    """Explicit ticks for a log axis: 1-2-5 steps labelled in the axis's unit, e.g. '50 KiB,
    100 KiB, 200 KiB, 500 KiB, 1 MiB' or '0.005 ms, 0.01 ms', instead of Plotly's minor-digit
    labels ('5 6 7 8 9 100k 2 3'). unit: 'bytes' (binary prefixes, IEC 80000-13), 'ms' or
    'count' (k, M). Returns tickvals/ticktext for the axis dict; {} without positive values."""
    positive = [float(v) for v in values if v is not None and v > 0]
    if not positive:
        return {}
    lo, hi = min(positive) / 1.6, max(positive) * 1.6
    if unit == "bytes":
        ticks = [
            v
            for base in (1.0, 1024.0, 1024.0**2, 1024.0**3)
            for v in _nice_steps(lo, hi, base)
            if base <= v < base * 1000 or (base == 1.0 and v < 1)
        ]  # never '1000 KiB' beside '1 MiB'
        text = [_bytes_label(v) for v in ticks]
    elif unit == "ms":
        ticks = _nice_steps(lo, hi, 1.0)
        text = [f"{v:.6g} ms" for v in ticks]
    else:
        ticks = _nice_steps(lo, hi, 1.0)
        text = [_count_label(v) for v in ticks]
    keep = [i for i, v in enumerate(ticks) if lo <= v <= hi] or list(range(len(ticks)))
    return {"tickvals": [ticks[i] for i in keep], "ticktext": [text[i] for i in keep]}


def _bytes_label(v: float) -> str:
    for unit, size in (("GiB", 1024.0**3), ("MiB", 1024.0**2), ("KiB", 1024.0)):
        if v >= size:
            return f"{v / size:.6g} {unit}"
    return f"{v:.6g} B"


def _count_label(v: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if v >= size:
            return f"{v / size:.6g}{unit}"
    return f"{v:.6g}"
