"""Loss curves of several runs overlaid: train solid, validation dashed, one colour per run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import plotly.graph_objects as go

from backend.figures.text import esc, finite
from backend.figures.theme import axis, base_layout, color, empty_annotation

MANY_RUNS = 12  # above this, no legend and per-point hover

# Series = {"steps": [...], "values": [...]} as returned by GET /api/runs/{id}/metrics.
Series = Mapping[str, Any]


def loss_figure(
    series_by_run: Mapping[str, Mapping[str, Series]],
    keys: tuple[str, ...] = ("loss", "val_loss"),
) -> dict[str, Any]:
    """`series_by_run` maps a run label (user text, escaped here) to its series by metric key."""
    many = len(series_by_run) > MANY_RUNS
    layout = base_layout(
        "Loss",
        xaxis=axis("Step (training batch)"),
        yaxis=axis("Loss"),
        # With dozens of runs a unified hover box and a legend of hundreds of entries cost the
        # browser seconds per redraw (measured with bench/dashboard.py); each curve still names
        # its run on hover, and the table below lists the runs.
        hovermode="closest" if many else "x unified",
        showlegend=not many,
        # one column at the right: run labels can be long and many
        legend={"orientation": "v", "x": 1.02, "xanchor": "left", "y": 1, "font": {"size": 11}},
    )
    fig = go.Figure(layout=layout)
    arrays: list[tuple[list[Any], list[Any]]] = []
    for i, (run_label, series) in enumerate(series_by_run.items()):
        for key in keys:
            s = series.get(key)
            if not s or not s.get("steps"):
                continue
            validation = key.startswith("val_")
            # Styles go through plotly's validation; the point arrays are attached to the
            # figure's JSON afterwards: validating 100 runs x 1,000 points element by element
            # took seconds (profiled) and adds nothing for plain numbers.
            fig.add_trace(
                go.Scatter(
                    mode="lines+markers" if validation else "lines",
                    name=f"{esc(run_label)} · {esc(key)}",
                    legendgroup=f"run{i}",
                    line={
                        "color": color(i),
                        "width": 2 if validation else 1.5,
                        "dash": "dash" if validation else "solid",
                    },
                    marker={"size": 5},
                    connectgaps=False,
                    meta={"role": "loss", "key": esc(key)},
                )
            )
            arrays.append(([int(x) for x in s["steps"]], [finite(v) for v in s["values"]]))
    if not fig.data:
        layout["annotations"] = [empty_annotation("No loss points logged yet")]
        layout["xaxis"]["visible"] = False
        layout["yaxis"]["visible"] = False
        return go.Figure(layout=layout).to_plotly_json()
    out = fig.to_plotly_json()
    for trace, (xs, ys) in zip(out["data"], arrays, strict=True):
        trace["x"], trace["y"] = xs, ys
    return out
