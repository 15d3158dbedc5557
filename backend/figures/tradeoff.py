"""Accuracy against a cost (size, gzip size, parameters, latency), with the Pareto front."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from backend.figures.labels import technique_of, variant_label
from backend.figures.pareto import pareto_flags, pareto_front
from backend.figures.text import esc, finite, human_bytes, human_number
from backend.figures.theme import axis, base_layout, color, empty_annotation, log_ticks
from runspec.vocabulary import X_AXES

X_UNITS = {
    "size_bytes": "bytes",
    "gzip_bytes": "bytes",
    "params": "count",
    "latency_p50_ms": "ms",
    "latency_p90_ms": "ms",
    "peak_memory_bytes": "bytes",
    "mcu_ram_bytes": "bytes",
}
# The x axes whose value depends on the machine that measured it (the title names it).
MEASURED_ON_A_MACHINE = ("latency_p50_ms", "latency_p90_ms", "peak_memory_bytes")
DIMMED = 0.3
# Marker shape per format, so the keras and TFLite variants of one recipe stay apart.
SYMBOLS = {
    "keras": "circle",
    "tflite-float32": "square",
    "tflite-float16": "triangle-up",
    "tflite-dynamic": "diamond",
    "tflite-int8": "star",
}


def symbol(fmt: object) -> str:
    return SYMBOLS.get(str(fmt), "circle")


def _fmt_x(x: str, value: float | None) -> str:
    if X_UNITS.get(x) == "bytes":
        return human_bytes(value)
    if X_UNITS.get(x) == "ms":
        return "–" if value is None else f"{value:.3g} ms"
    return human_number(value, 6)


def _interval(row: Mapping[str, Any], key: str, show: Any) -> str:
    """' ± half (95 % CI low–high, n=5)' of a group row's figure; ' (n=1, no interval)'."""
    n = row.get(f"{key}_n")
    half = finite(row.get(f"{key}_half_width"))
    if half is None:
        return f" (n={n}, no interval)"
    return f" ± {show(half)} (95 % CI {show(finite(row.get(f'{key}_ci_low')))}–{show(finite(row.get(f'{key}_ci_high')))}, n={n})"


def _hover(row: Mapping[str, Any], x: str, on_front: bool) -> str:
    acc = finite(row.get("accuracy"))
    grouped = "group_key" in row
    name = (
        f"<b>{esc(str(row.get('group_name') or ''))} · {esc(str(row.get('format') or ''))}</b> "
        f"(group of {row.get('n_runs')} runs)"
        if grouped
        else f"<b>{variant_label(row)}</b>"
    )
    acc_text = "–" if acc is None else f"{acc:.4f}"
    x_text = _fmt_x(x, finite(row.get(x)))
    if grouped:
        acc_text = "mean " + acc_text + _interval(row, "accuracy", lambda v: "–" if v is None else f"{v:.4f}")
        x_text = "mean " + x_text + _interval(row, x, lambda v: _fmt_x(x, v))
    lines = [
        name,
        f"technique: {esc(technique_of(row))}",
        f"accuracy: {acc_text}",
        f"{esc(X_AXES[x].split(' (')[0].lower())}: {x_text}",
        "on the Pareto front" if on_front else "dominated",
    ]
    return "<br>".join(lines)


def _error_bar(members: list[tuple[Mapping[str, Any], bool]], key: str, colour: str) -> dict[str, Any] | None:
    """Plotly's asymmetric error bar of group rows' 95 % intervals (None: not group rows); a
    member without an interval (one run) has no bar."""
    if not all("group_key" in r for r, _ in members):
        return None
    plus, minus = [], []
    for r, _ in members:
        mean, low, high = finite(r.get(key)), finite(r.get(f"{key}_ci_low")), finite(r.get(f"{key}_ci_high"))
        ok = None not in (mean, low, high)
        plus.append(high - mean if ok else None)  # type: ignore[operator]
        minus.append(mean - low if ok else None)  # type: ignore[operator]
    return {
        "type": "data",
        "symmetric": False,
        "array": plus,
        "arrayminus": minus,
        "color": colour,
        "thickness": 1.2,
        "width": 4,
    }


def _points(
    members: list[tuple[Mapping[str, Any], bool]], x: str, tech: str, colour: str, *, showlegend: bool
) -> go.Scatter:
    bars = {"error_x": _error_bar(members, x, colour), "error_y": _error_bar(members, "accuracy", colour)}
    return go.Scatter(
        x=[finite(r.get(x)) for r, _ in members],
        y=[finite(r.get("accuracy")) for r, _ in members],
        **{k: v for k, v in bars.items() if v is not None},
        mode="markers",
        name=esc(tech),
        legendgroup=esc(tech),
        showlegend=showlegend,
        marker={
            "color": colour,
            "size": [13 if f else 10 for _, f in members],
            "symbol": [symbol(r.get("format")) for r, _ in members],
            "opacity": [1.0 if f else DIMMED for _, f in members],
            "line": {"width": [1.5 if f else 0 for _, f in members], "color": "#111827"},
        },
        hovertext=[_hover(r, x, f) for r, f in members],
        hoverinfo="text",
        # run id and variant id let the page link a clicked point to its run
        customdata=[[r.get("run_id"), r.get("variant_id")] for r, _ in members],
        meta={"role": "variants", "technique": esc(tech), "front": bool(members[0][1])},
    )


def _accuracy_ticks(rows: Sequence[Mapping[str, Any]]) -> str:
    """Enough decimals that neighbouring ticks differ: variants of one model often lie within
    a tenth of a point, where three decimals print the same label twice."""
    values = [float(r["accuracy"]) for r in rows]
    span = max(values) - min(values) if values else 1.0
    return f".{min(5, max(3, math.ceil(-math.log10(span)) + 1)) if span > 0 else 3}f"


def accuracy_range(values: Sequence[float]) -> dict[str, Any]:
    """The accuracy axis spans the data with a margin, inside [0, 1] when every value is a
    fraction: Plotly's autorange plus markers could run it to 1.8 or below 0."""
    if not values:
        return {}
    lo, hi = min(values), max(values)
    pad = max((hi - lo) * 0.12, 0.005)
    if 0.0 <= lo and hi <= 1.0:
        return {"range": [max(0.0, lo - pad), min(1.0, hi + pad)], "autorange": False}
    return {"range": [lo - pad, hi + pad], "autorange": False}


def _expected(rows: Sequence[Mapping[str, Any]], x: str) -> list[Mapping[str, Any]]:
    """The rows that should have a value for `x`: int8 TFLite variants for the microcontroller
    estimate, TFLite variants for what a device measures, every measured variant otherwise."""
    measured = [r for r in rows if r.get("variant_id") is not None]
    if x == "mcu_ram_bytes":
        return [r for r in measured if r.get("format") == "tflite-int8"]
    if x in MEASURED_ON_A_MACHINE:
        return [
            r for r in measured if (r.get("runtime") or "") == "tflite" or str(r.get("format", "")).startswith("tflite")
        ]
    return measured


def _lower_first(label: str) -> str:
    """'Microcontroller RAM, int8' → 'microcontroller RAM, int8' (acronyms keep their case)."""
    return label[:1].lower() + label[1:]


def tradeoff_figure(
    rows: Sequence[Mapping[str, Any]], x: str = "size_bytes", device: str | None = None, *, grouped: bool = False
) -> dict[str, Any]:
    """One point per variant, coloured by technique; the front as a line, others dimmed.
    `device`: the label whose measurements the rows carry (named in the title when x is measured
    on a machine: latency, peak memory). `grouped`: the rows are seed-group rows
    (backend.store.groups.group_rows): each point is a group's mean, with its 95 % confidence
    interval as error bars on both axes, and the front is the front of the means."""
    if x not in X_AXES:
        raise ValueError(f"x must be one of {sorted(X_AXES)}")
    usable = [r for r in rows if finite(r.get(x)) is not None and finite(r.get("accuracy")) is not None]
    where = f" on {esc(device)}" if device and x in MEASURED_ON_A_MACHINE else ""
    missing = sum(1 for r in _expected(rows, x) if finite(r.get(x)) is None)
    layout = base_layout(
        ("Mean accuracy vs mean " if grouped else "Accuracy vs ")
        + _lower_first(X_AXES[x].split(" (")[0])
        + where
        + (
            f" · {missing} TFLite variant{'s' if missing != 1 else ''} not measured{where}"
            if missing and usable
            else ""
        )
        + (" · bars: 95 % CI over seeds" if grouped and usable else ""),
        xaxis=axis(X_AXES[x], type="log", **log_ticks([finite(r.get(x)) for r in usable], X_UNITS[x])),
        yaxis=axis(
            "Test accuracy",
            tickformat=_accuracy_ticks(usable),
            # a group's error bar is part of what the axis must show
            **accuracy_range(
                [float(r["accuracy"]) for r in usable]
                + [
                    min(1.0, max(0.0, v))  # an accuracy's interval past [0, 1] is drawn to the edge
                    for r in usable
                    for v in (finite(r.get("accuracy_ci_low")), finite(r.get("accuracy_ci_high")))
                    if grouped and v is not None
                ]
            ),
        ),
        # techniques, then the marker shapes of the formats, in rows under the plot: long
        # recipe names ("weight clustering → post-training quantization") never scroll
        legend={
            "orientation": "h",
            "x": 0,
            "xanchor": "left",
            "y": -0.22,
            "yanchor": "top",
            "font": {"size": 11},
        },
        margin={"l": 56, "r": 16, "t": 40, "b": 48},
    )
    if not usable:
        layout["annotations"] = [
            empty_annotation(
                "No measured variants to plot yet"
                if x == "size_bytes" or not rows
                else f"No variant has a {X_AXES[x].split(' (')[0].lower()} measurement{where}"
            )
        ]
        layout["xaxis"]["visible"] = False
        layout["yaxis"]["visible"] = False
        return go.Figure(layout=layout).to_plotly_json()

    flags = pareto_flags(usable, x, "accuracy")
    fig = go.Figure(layout=layout)
    # colours by the techniques of every row, so a technique keeps its colour across axes and devices
    techniques = sorted({technique_of(r) for r in rows})
    for i, tech in enumerate(techniques):
        members = [(r, f) for r, f in zip(usable, flags, strict=True) if technique_of(r) == tech]
        # two traces per technique, front and dominated, so the legend swatch is never the
        # dimmed style; one legend entry (the front's when there is one) toggles both
        parts = [[m for m in members if m[1]], [m for m in members if not m[1]]]
        legend_on = 0 if parts[0] else 1
        for k, part in enumerate(parts):
            if not part:
                continue
            fig.add_trace(_points(part, x, tech, color(i), showlegend=k == legend_on))
    front = pareto_front(usable, x, "accuracy")
    fig.add_trace(
        go.Scatter(
            x=[finite(r.get(x)) for r in front],
            y=[finite(r.get("accuracy")) for r in front],
            mode="lines",
            name="Pareto front",
            line={"color": "#111827", "width": 1.5, "dash": "dot", "shape": "hv"},
            hoverinfo="skip",
            meta={"role": "pareto"},
        )
    )
    # a legend key for the shapes: empty traces, one per format present
    for fmt in sorted(
        {str(r.get("format")) for r in usable},
        key=lambda f: list(SYMBOLS).index(f) if f in SYMBOLS else 99,
    ):
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=f"shape: {esc(fmt.removeprefix('tflite-'))}",  # the format's marker, named as elsewhere
                marker={"symbol": symbol(fmt), "color": "#6b7280", "size": 10},
                hoverinfo="skip",
                meta={"role": "format-key"},
            )
        )
    return fig.to_plotly_json()
