"""Latency per variant: p50 bars with a whisker up to p95."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from backend.figures.labels import technique_of, variant_label
from backend.figures.text import esc, finite
from backend.figures.theme import axis, base_layout, color, empty_annotation, log_ticks


def _runtime(row: Mapping[str, Any]) -> str:
    """A compare row's runtime (table.compare_rows sets it; an older row has only its format)."""
    fmt = str(row.get("format", ""))
    return str(row.get("runtime") or ("tflite" if fmt.startswith("tflite") else fmt))


def _top_margin(names: set[str], width_px: float = 1100.0) -> int:
    """Room above the plot for the title and a horizontal legend of `names`: one 22 px row per
    ~`width_px` of entries (an entry is its text at ~6.5 px a character plus its swatch), so a
    legend of long technique names never runs into the title."""
    entries = sum(len(n) * 6.5 + 48 for n in names)
    rows = max(1, math.ceil(entries / width_px))
    return 50 + 22 * rows


def latency_rows(rows: Sequence[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], str]:
    """The variants whose latencies are compared, and the runtime: like with like. A TFLite
    invocation (~0.01 ms) and a Keras Python call (~1 ms) measure different things, so the
    TFLite variants are drawn when there are any, the Keras ones only otherwise."""
    usable = [r for r in rows if finite(r.get("latency_p50_ms")) is not None]
    tflite = [r for r in usable if _runtime(r) == "tflite"]
    return (tflite, "TFLite") if tflite else (usable, "Keras")


def latency_figure(rows: Sequence[Mapping[str, Any]], device: str | None = None) -> dict[str, Any]:
    """p50 bars with a p95 whisker per variant; `device` (the label whose measurements the rows
    carry) is named in the title."""
    usable, runtime = latency_rows(rows)
    left_out = sum(1 for r in rows if finite(r.get("latency_p50_ms")) is not None) - len(usable)
    not_measured = sum(1 for r in rows if _runtime(r) == "tflite" and finite(r.get("latency_p50_ms")) is None)
    values = [finite(r.get(k)) for r in usable for k in ("latency_p50_ms", "latency_p95_ms")]
    layout = base_layout(
        f"{runtime} latency{f' on {esc(device)}' if device else ''}, batch 1: p50 bar, p95 whisker (log)"
        + (f" · {left_out} Keras variants in the table" if left_out else "")
        + (
            f" · {not_measured} TFLite not measured{f' on {esc(device)}' if device else ''}"
            if not_measured and usable
            else ""
        ),
        xaxis=axis("", type="category", tickangle=-30),
        yaxis=axis("Latency (ms, log)", type="log", **log_ticks(values, "ms")),
        # one bar per category; "overlay" stops bars of different traces being offset
        barmode="overlay",
        # above the plot, under the title: the rotated variant labels take the space below it
        legend={"orientation": "h", "x": 0, "xanchor": "left", "y": 1.0, "yanchor": "bottom", "font": {"size": 11}},
        margin={"l": 64, "r": 16, "t": _top_margin({technique_of(r) for r in usable}), "b": 48},
        bargap=0.35,
    )
    if not usable:
        layout["annotations"] = [
            empty_annotation(
                f"No latency measurements on {esc(device)} yet" if device else "No latency measurements yet"
            )
        ]
        layout["xaxis"]["visible"] = False
        layout["yaxis"]["visible"] = False
        return go.Figure(layout=layout).to_plotly_json()

    fig = go.Figure(layout=layout)
    order = [variant_label(r) for r in usable]
    fig.update_xaxes(categoryorder="array", categoryarray=order)
    # colours by the techniques of every row, so a technique keeps its colour across axes and devices
    techniques = sorted({technique_of(r) for r in rows})
    for i, tech in enumerate(techniques):
        members = [r for r in usable if technique_of(r) == tech]
        if not members:
            continue
        p50 = [finite(r.get("latency_p50_ms")) for r in members]
        p95 = [finite(r.get("latency_p95_ms")) for r in members]
        plus = [max(0.0, (b - a)) if (a is not None and b is not None) else 0.0 for a, b in zip(p50, p95, strict=True)]
        hover = [
            f"<b>{variant_label(r)}</b><br>technique: {esc(tech)}<br>"
            f"p50: {a:.4g} ms<br>p95: {'–' if b is None else f'{b:.4g} ms'}"
            for r, a, b in zip(members, p50, p95, strict=True)
        ]
        fig.add_trace(
            go.Bar(
                x=[variant_label(r) for r in members],
                y=p50,
                name=esc(tech),
                marker={"color": color(i)},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": plus,
                    "arrayminus": [0.0] * len(plus),
                    "color": "#111827",
                    "thickness": 1.2,
                    "width": 5,
                },
                hovertext=hover,
                hoverinfo="text",
                customdata=[[r.get("run_id"), r.get("variant_id")] for r in members],
                meta={"role": "latency", "technique": esc(tech)},
            )
        )
    return fig.to_plotly_json()
