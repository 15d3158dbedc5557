"""One look for every figure: fonts, grid, palette. Kept explicit (template "none") so a
figure's JSON stays small and does not depend on plotly.py's default template."""

from __future__ import annotations

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
