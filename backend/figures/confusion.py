"""A confusion matrix as a heat map (rows: true class, columns: predicted class)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from backend.figures.text import esc
from backend.figures.theme import axis, base_layout, empty_annotation


def confusion_figure(matrix: Sequence[Sequence[int]], labels: Sequence[object] | None = None) -> dict[str, Any]:
    n = len(matrix)
    layout = base_layout(
        "Confusion matrix",
        xaxis=axis("Predicted", type="category", side="bottom", showgrid=False),
        yaxis=axis("True", type="category", autorange="reversed", showgrid=False),
        margin={"l": 64, "r": 16, "t": 40, "b": 56},
    )
    if n == 0:
        layout["annotations"] = [empty_annotation("No confusion matrix for this variant")]
        layout["xaxis"]["visible"] = False
        layout["yaxis"]["visible"] = False
        return go.Figure(layout=layout).to_plotly_json()
    names = [esc(v) for v in (labels if labels is not None else range(n))]
    if len(names) != n:
        raise ValueError("labels must have one entry per matrix row")
    z = [[int(c) for c in row] for row in matrix]
    totals = [sum(row) or 1 for row in z]
    share = [[c / totals[i] for c in row] for i, row in enumerate(z)]
    fig = go.Figure(
        go.Heatmap(
            z=share,
            x=names,
            y=names,
            text=z,
            # counts in the cells while the colour shows the share of the true class
            texttemplate="%{text}" if n <= 20 else None,
            customdata=z,
            hovertemplate=("true %{y} → predicted %{x}<br>%{customdata} (%{z:.1%} of true %{y})<extra></extra>"),
            colorscale="Blues",
            zmin=0,
            zmax=1,
            colorbar={"title": {"text": "share"}, "tickformat": ".0%", "thickness": 12},
        ),
        layout=layout,
    )
    return fig.to_plotly_json()
