"""Every user string reaches Plotly escaped: Plotly renders pseudo-HTML in labels and hovers."""

from __future__ import annotations

import json

from backend.figures import (
    confusion_figure,
    latency_figure,
    loss_figure,
    report_html,
    tradeoff_figure,
)
from tests.figures.rows import XSS, crafted, row

ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"


def hostile_rows():
    return crafted() + [row(9, XSS, XSS, XSS, 0.99, 50)]


def assert_no_raw_markup(fig):
    text = json.dumps(fig)
    assert "<img" not in text
    assert ESCAPED in text


def test_tradeoff_escapes_names_techniques_and_formats():
    fig = tradeoff_figure(hostile_rows())
    assert_no_raw_markup(fig)
    names = [t["name"] for t in fig["data"]]
    assert ESCAPED in names  # the technique is the legend entry


def test_latency_escapes_category_labels_and_hovers():
    assert_no_raw_markup(latency_figure(hostile_rows()[-1:]))  # an unknown format: drawn alone
    assert_no_raw_markup(latency_figure([row(9, XSS, "tflite-int8", XSS, 0.99, 50)]))


def test_loss_escapes_run_labels_and_metric_keys():
    fig = loss_figure({XSS: {"loss": {"steps": [1], "values": [1.0]}}}, keys=("loss",))
    assert_no_raw_markup(fig)


def test_loss_with_many_runs_escapes_the_run_labels_in_the_hover_text():
    series = {f"{XSS} {i}": {"loss": {"steps": [1, 2], "values": [1.0, 0.5]}} for i in range(30)}
    fig = loss_figure(series, keys=("loss",))
    assert_no_raw_markup(fig)
    assert all(t.startswith(ESCAPED) for trace in fig["data"] for t in trace["text"] if t)


def test_confusion_escapes_class_labels():
    assert_no_raw_markup(confusion_figure([[1, 0], [0, 1]], [XSS, "ok"]))


def test_report_escapes_table_runs_and_figure_json():
    rows = hostile_rows()
    for r in rows:
        r.update(pareto=False, delta_accuracy=None, size_ratio=None, latency_ratio=None)
    figs = {"tradeoff": tradeoff_figure(rows), "latency": latency_figure(rows)}
    html = report_html(rows, figs, [{"id": 9, "name": XSS, "summary": XSS, "status": "succeeded"}])
    body = html.split("</head>", 1)[1]  # skip the inlined plotly.js
    assert "<img" not in body
    assert "&lt;img src=x onerror=alert(1)&gt;" in body
    # figure JSON cannot close its script element
    assert "</script><img" not in body
