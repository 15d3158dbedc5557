"""Loss curves of several runs overlaid: train solid, validation dashed, one colour per run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import plotly.graph_objects as go

from backend.figures.text import esc, finite
from backend.figures.theme import PALETTE, axis, base_layout, color, empty_annotation

MANY_RUNS = 12  # above this, the lighter drawing described in loss_figure

# Series = {"steps": [...], "values": [...]} as returned by GET /api/runs/{id}/metrics.
Series = Mapping[str, Any]


def loss_figure(
    series_by_run: Mapping[str, Mapping[str, Series]],
    keys: tuple[str, ...] = ("loss", "val_loss"),
) -> dict[str, Any]:
    """`series_by_run` maps a run label (user text, escaped here) to its series by metric key."""
    many = len(series_by_run) > MANY_RUNS
    # With dozens of runs the browser's time goes into what it draws per trace and per point
    # (profiled with bench/dashboard.py, 100 runs): a unified hover box and a legend of
    # hundreds of entries cost seconds per redraw, a marker per validation point ~1.5 s,
    # automatic margins a second full draw, and each trace its own defaults, calc and SVG
    # group. So above MANY_RUNS: no legend (the table lists the runs), per-point hover naming
    # the run, validation as dashed lines without markers, fixed margins, and the runs that
    # share a colour drawn as one trace with gaps between them (same picture, 20 traces).
    extra = {"automargin": False} if many else {}
    layout = base_layout(
        "Loss",
        xaxis=axis("Step (training batch)", **extra),
        yaxis=axis("Loss", **extra),
        hovermode="closest" if many else "x unified",
        showlegend=not many,
        # one column at the right: run labels can be long and many
        legend={"orientation": "v", "x": 1.02, "xanchor": "left", "y": 1, "font": {"size": 11}},
    )
    if many:
        layout["margin"] = {"l": 72, "r": 16, "t": 40, "b": 56}
    styles = {key: _style(key, markers=not many) for key in keys}
    traces: list[dict[str, Any]] = []
    for i, (run_label, series) in enumerate(series_by_run.items()):
        for key in keys:
            s = series.get(key)
            if not s or not s.get("steps"):
                continue
            traces.append(
                {
                    **styles[key],
                    "name": f"{esc(run_label)} · {esc(key)}",
                    "legendgroup": f"run{i}",
                    "line": {**styles[key]["line"], "color": color(i)},
                    "x": [int(x) for x in s["steps"]],
                    "y": [finite(v) for v in s["values"]],
                }
            )
    if not traces:
        layout["annotations"] = [empty_annotation("No loss points logged yet")]
        layout["xaxis"]["visible"] = False
        layout["yaxis"]["visible"] = False
        return go.Figure(layout=layout).to_plotly_json()
    out = go.Figure(layout=layout).to_plotly_json()
    out["data"] = _merged_by_colour(traces, keys) if many else traces
    return out


def _style(key: str, *, markers: bool) -> dict[str, Any]:
    """One metric's trace style, validated by plotly once; each run's trace copies it and adds
    its name, colour and points. A go.Scatter per trace cost ~3 ms (0.6 s for 100 runs,
    profiled), and validating the point arrays element by element seconds more."""
    validation = key.startswith("val_")
    return go.Scatter(
        mode="lines+markers" if validation and markers else "lines",
        line={"width": 2 if validation else 1.5, "dash": "dash" if validation else "solid"},
        marker={"size": 5},
        connectgaps=False,
        meta={"role": "loss", "key": esc(key)},
    ).to_plotly_json()


def _merged_by_colour(traces: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """One trace per (colour, metric): the runs' points joined by null gaps (connectgaps off
    keeps them apart), each point carrying its run's label for the hover text."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for t in traces:
        group_key = (t["line"]["color"], t["meta"]["key"])
        g = groups.get(group_key)
        if g is None:
            g = groups[group_key] = {
                **t,
                "name": t["meta"]["key"],
                "legendgroup": f"{group_key[0]} {group_key[1]}",
                "x": [],
                "y": [],
                "text": [],
                "hovertemplate": "%{text}<br>step %{x}<br>%{y}<extra></extra>",
            }
        elif g["x"]:
            g["x"].append(None)
            g["y"].append(None)
            g["text"].append(None)
        g["x"] += t["x"]
        g["y"] += t["y"]
        g["text"] += [t["name"]] * len(t["x"])
    # train curves first, then validation, as in the per-run order
    order = {k: n for n, k in enumerate(esc(k) for k in keys)}
    colours = {c: n for n, c in enumerate(PALETTE)}
    return sorted(groups.values(), key=lambda g: (order.get(g["meta"]["key"], 0), colours.get(g["line"]["color"], 0)))


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def group_loss_figure(
    curves_by_group: Mapping[str, Mapping[str, Mapping[str, Any] | None]],
    members_by_group: Mapping[str, Mapping[str, Mapping[str, Series]]],
    *,
    labels: Mapping[str, str],
    keys: tuple[str, ...] = ("loss", "val_loss"),
) -> dict[str, Any]:
    """Each seed group's mean loss curve with its shaded 95 % band, one colour per group.

    `curves_by_group` maps a group key to {metric key: backend.store.groups.mean_curves(...)}
    ({steps, mean, ci_low, ci_high, n} or None); `members_by_group` maps it to its runs' own
    series ({run label: {metric key: Series}}), drawn hidden (`visible: false`, meta role
    "member") for the page's "all traces" toggle; `labels` names each group (user text,
    escaped here). Band traces have meta role "band" (lower edge, then the upper edge filled
    to it), mean curves role "mean"."""
    layout = base_layout(
        "Loss · group means with 95 % bands",
        xaxis=axis("Step (training batch)"),
        yaxis=axis("Loss"),
        hovermode="closest",
        legend={"orientation": "v", "x": 1.02, "xanchor": "left", "y": 1, "font": {"size": 11}},
    )
    traces: list[dict[str, Any]] = []
    members: list[dict[str, Any]] = []
    for i, (group, by_key) in enumerate(curves_by_group.items()):
        colour = color(i)
        label = esc(labels.get(group, group[:8]))
        for key in keys:
            c = by_key.get(key)
            if not c or not c.get("steps"):
                continue
            dash = "dash" if key.startswith("val_") else "solid"
            name = f"{label} · {esc(key)} (mean of {c['n']})"
            if c["n"] >= 2:
                traces.append(
                    {
                        "type": "scatter",
                        "x": c["steps"],
                        "y": [finite(v) for v in c["ci_low"]],
                        "mode": "lines",
                        "line": {"width": 0, "color": colour},
                        "hoverinfo": "skip",
                        "showlegend": False,
                        "legendgroup": f"g{i}{key}",
                        "meta": {"role": "band", "edge": "low", "key": esc(key)},
                    }
                )
                traces.append(
                    {
                        "type": "scatter",
                        "x": c["steps"],
                        "y": [finite(v) for v in c["ci_high"]],
                        "mode": "lines",
                        "line": {"width": 0, "color": colour},
                        "fill": "tonexty",
                        "fillcolor": _rgba(colour, 0.18),
                        "hoverinfo": "skip",
                        "showlegend": False,
                        "legendgroup": f"g{i}{key}",
                        "meta": {"role": "band", "edge": "high", "key": esc(key)},
                    }
                )
            traces.append(
                {
                    "type": "scatter",
                    "x": c["steps"],
                    "y": [finite(v) for v in c["mean"]],
                    "mode": "lines",
                    "name": name,
                    "line": {"width": 2, "dash": dash, "color": colour},
                    "legendgroup": f"g{i}{key}",
                    "hovertemplate": f"{name}<br>step %{{x}}<br>%{{y:.4f}}<extra></extra>",
                    "meta": {"role": "mean", "key": esc(key), "n": c["n"]},
                }
            )
        for run_label, series in members_by_group.get(group, {}).items():
            for key in keys:
                s = series.get(key)
                if not s or not s.get("steps"):
                    continue
                members.append(
                    {
                        "type": "scatter",
                        "x": [int(x) for x in s["steps"]],
                        "y": [finite(v) for v in s["values"]],
                        "mode": "lines",
                        "name": f"{esc(run_label)} · {esc(key)}",
                        "line": {"width": 1, "dash": "dash" if key.startswith("val_") else "solid", "color": colour},
                        "opacity": 0.55,
                        "visible": False,
                        "showlegend": False,
                        "connectgaps": False,
                        "hovertemplate": f"{esc(run_label)} · {esc(key)}<br>step %{{x}}<br>%{{y:.4f}}<extra></extra>",
                        "meta": {"role": "member", "key": esc(key)},
                    }
                )
    if not traces:
        layout["annotations"] = [empty_annotation("No loss points logged yet")]
        layout["xaxis"]["visible"] = False
        layout["yaxis"]["visible"] = False
        return go.Figure(layout=layout).to_plotly_json()
    out = go.Figure(layout=layout).to_plotly_json()
    out["data"] = traces + members  # members last: the page toggles them by index
    return out
