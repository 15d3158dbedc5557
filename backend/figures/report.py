"""A self-contained HTML report: Plotly.js, the figures and the table inlined; opens offline.

Every user string goes through html.escape for the page and is already escaped inside the
figures (see text.py). Figure JSON is embedded in <script type="application/json"> with
'<', '>' and '&' written as \\u escapes so no value can close the script element.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from backend.figures.labels import technique_of
from backend.figures.text import finite, human_bytes
from runspec.vocabulary import OWN_DEVICE

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif;color:#1f2937;
margin:0;background:#f6f7f9}
main{max-width:1200px;margin:0 auto;padding:24px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
.meta{color:#6b7280;margin:0 0 16px}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:12px;margin:12px 0;overflow-x:auto}
.fig{height:420px}
table{border-collapse:collapse;width:100%;background:#fff;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid #e5e7eb;padding:6px 8px;text-align:left;white-space:nowrap}
td.num,th.num{text-align:right}
tr.front td:first-child{box-shadow:inset 3px 0 0 #111827}
.pos{color:#15803d}.neg{color:#b91c1c}
"""

# Renders each <script type="application/json" data-figure> into the div before it.
_BOOT = """
document.querySelectorAll('script[data-figure]').forEach(function (el) {
  var fig = JSON.parse(el.textContent);
  var div = document.getElementById(el.getAttribute('data-figure'));
  Plotly.react(div, fig.data, fig.layout, {responsive: true, displaylogo: false});
});
"""

# How the latency and memory columns were measured (docs/techniques.md, "Latency protocol").
PROTOCOL_NOTE = (
    "Latency: batch 1, wall time of Interpreter.invoke in LiteRT with 1 thread and its default XNNPACK "
    "delegate, after warm-up runs, over the larger of the spec's runs or seconds; p90 is the headline "
    "(MLPerf single-stream), 'unstable' marks a figure whose spread stayed above the guard (coefficient of "
    "variation or p99/p50) after one re-measurement. Keras rows time a Python call and are never ratioed "
    "against TFLite. Peak mem: resident memory growth of a fresh process loading and running the file. "
    "MCU RAM (int8): peak of simultaneously live activation bytes over the op order; flash is the file size."
)

_FIGURE_TITLES = {"loss": "Loss curves", "tradeoff": "Accuracy vs size", "latency": "Latency"}


@lru_cache(maxsize=1)
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    # "</script" cannot appear inside an inline script; the bundle has none today, but make sure.
    return get_plotlyjs().replace("</script", "<\\/script")


def _json_for_script(value: Any) -> str:
    text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _num(value: Any, fmt: str) -> str:
    v = finite(value)
    return "–" if v is None else format(v, fmt)


def _delta(value: Any) -> str:
    v = finite(value)
    if v is None:
        return "<td class='num'>–</td>"
    cls = "pos" if v > 0 else "neg" if v < 0 else ""
    return f"<td class='num {cls}'>{v:+.4f}</td>"


def _p90(row: Mapping[str, Any]) -> str:
    """The headline latency, or the flag when the guard found the machine busy (issue 18)."""
    text = _num(row.get("latency_p90_ms"), ".4g")
    return f"{text} <span class='neg'>unstable: machine busy</span>" if row.get("latency_unstable") else text


def _table(rows: Sequence[Mapping[str, Any]]) -> str:
    head = (
        "<tr><th>Run</th><th>Format</th><th>Technique</th><th class='num'>Accuracy</th>"
        "<th class='num'>Δ acc</th><th class='num'>F1</th><th class='num'>Size</th>"
        "<th class='num'>Size ×</th><th class='num'>Gzip</th><th class='num'>Params</th>"
        "<th class='num'>p90 ms</th><th class='num'>p50 ms</th><th class='num'>p99 ms</th>"
        "<th class='num'>Peak mem</th><th class='num'>MCU RAM</th><th>Latency protocol</th>"
        "<th>Pareto</th><th>Recipe</th></tr>"
    )
    body = []
    for r in rows:
        e = html.escape
        body.append(
            f"<tr class='{'front' if r.get('pareto') else ''}'>"
            f"<td>#{e(str(r.get('run_id')))} {e(str(r.get('run_name') or ''))}</td>"
            f"<td>{e(str(r.get('format') or ''))}</td><td>{e(technique_of(r))}</td>"
            f"<td class='num'>{_num(r.get('accuracy'), '.4f')}</td>"
            f"{_delta(r.get('delta_accuracy'))}"
            f"<td class='num'>{_num(r.get('f1'), '.4f')}</td>"
            f"<td class='num'>{e(human_bytes(finite(r.get('size_bytes'))))}</td>"
            f"<td class='num'>{_num(r.get('size_ratio'), '.3f')}</td>"
            f"<td class='num'>{e(human_bytes(finite(r.get('gzip_bytes'))))}</td>"
            f"<td class='num'>{_num(r.get('params'), ',.0f')}</td>"
            f"<td class='num'>{_p90(r)}</td>"
            f"<td class='num'>{_num(r.get('latency_p50_ms'), '.4g')}</td>"
            f"<td class='num'>{_num(r.get('latency_p99_ms'), '.4g')}</td>"
            f"<td class='num'>{e(human_bytes(finite(r.get('peak_memory_bytes'))))}</td>"
            f"<td class='num'>{e(human_bytes(finite(r.get('mcu_ram_bytes'))))}</td>"
            f"<td>{e(str(r.get('latency_protocol') or '–'))}</td>"
            f"<td>{'yes' if r.get('pareto') else ''}</td><td>{e(recipe_text(r))}</td></tr>"
        )
    if not body:
        body.append("<tr><td colspan='18'>No measured variants.</td></tr>")
    return f"<table><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"


def interval_text(row: Mapping[str, Any], metric: str, fmt: str) -> str:
    """'0.9512 ± 0.0043 (95 % CI 0.9469–0.9555, n=5)'; 'n=1, no interval' for one run."""
    mean = finite(row.get(metric))
    if mean is None:
        return "–"
    half, n = finite(row.get(f"{metric}_half_width")), row.get(f"{metric}_n")
    if half is None:
        return f"{format(mean, fmt)} (n={n}, no interval)"
    low, high = finite(row.get(f"{metric}_ci_low")), finite(row.get(f"{metric}_ci_high"))
    return (
        f"{format(mean, fmt)} ± {format(half, fmt)} (95 % CI {format(low or 0, fmt)}–{format(high or 0, fmt)}, n={n})"
    )


def difference_text(d: Mapping[str, Any] | None, fmt: str) -> str:
    """'+0.0123 [+0.0040, +0.0206] significant'; 'no interval (n=1)'; '–' without a baseline."""
    if not d or d.get("diff") is None:
        return "–"
    diff = format(d["diff"], "+" + fmt)
    if d.get("ci_low") is None:
        return f"{diff}, no interval (n={min(d.get('n_a') or 0, d.get('n_b') or 0)})"
    mark = "significant" if d.get("significant") else "not significant"
    return f"{diff} [{format(d['ci_low'], '+' + fmt)}, {format(d['ci_high'], '+' + fmt)}] {mark}"


def _group_table(groups: Sequence[Mapping[str, Any]]) -> str:
    e = html.escape
    head = (
        "<tr><th>Group</th><th>Format</th><th>Technique</th><th class='num'>Runs</th>"
        "<th class='num'>Accuracy (mean ± 95 % CI)</th><th>Δ accuracy vs baseline (Welch 95 %)</th>"
        "<th class='num'>F1</th><th class='num'>Size bytes</th><th class='num'>p90 ms</th></tr>"
    )
    body = []
    for r in groups:
        diffs = r.get("differences") or {}
        body.append(
            f"<tr class='{'front' if r.get('pareto') else ''}'>"
            f"<td>{e(str(r.get('group_name') or ''))} <span class='meta'>#{e(', #'.join(map(str, r.get('run_ids') or [])))}</span></td>"
            f"<td>{e(str(r.get('format') or ''))}</td><td>{e(technique_of(r))}</td>"
            f"<td class='num'>{e(str(r.get('n_runs')))}</td>"
            f"<td class='num'>{e(interval_text(r, 'accuracy', '.4f'))}</td>"
            f"<td>{'baseline' if r.get('is_baseline') else e(difference_text(diffs.get('accuracy'), '.4f'))}</td>"
            f"<td class='num'>{e(interval_text(r, 'f1', '.4f'))}</td>"
            f"<td class='num'>{e(interval_text(r, 'size_bytes', ',.0f'))}</td>"
            f"<td class='num'>{e(interval_text(r, 'latency_p90_ms', '.4g'))}</td></tr>"
        )
    return f"<table><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"


def recipe_text(row: Mapping[str, Any]) -> str:
    """'adam lr 0.001 · batch 32 · 4 epochs · width 0.5 · pruning target_sparsity=0.8 …'."""
    parts = []
    if row.get("optimizer") or row.get("learning_rate") is not None:
        parts.append(f"{row.get('optimizer') or ''} lr {row.get('learning_rate')}".strip())
    if row.get("batch_size") is not None:
        parts.append(f"batch {row['batch_size']}")
    if row.get("epochs") is not None:
        parts.append(f"{row['epochs']} epochs")
    if row.get("width_multiplier") is not None:
        parts.append(f"width {row['width_multiplier']}")
    if row.get("technique_settings"):
        parts.append(str(row["technique_settings"]))
    return " · ".join(parts)


def baseline_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """'Deltas and ratios against #1 seed-baseline · tflite-float32' (latency: same runtime)."""
    ref = next((r for r in rows if r.get("baseline_run_id") is not None), None)
    if ref is None:
        return "No baseline: no selected run has a measured variant."
    name = next((r.get("run_name") for r in rows if r.get("run_id") == ref["baseline_run_id"]), "")
    return (
        f"Deltas and ratios against #{ref['baseline_run_id']} {name} · {ref.get('baseline_format')} "
        "(latency ratios against the baseline's model of the same runtime)."
    )


def _runs_list(runs: Sequence[Mapping[str, Any]]) -> str:
    items = []
    for run in runs:
        e = html.escape
        items.append(
            f"<li><b>#{e(str(run.get('id')))} {e(str(run.get('name') or ''))}</b> — "
            f"{e(str(run.get('summary') or ''))} · {e(str(run.get('status') or ''))}"
            f"{' · experiment ' + e(str(run.get('experiment'))) if run.get('experiment') else ''}"
            "</li>"
        )
    return f"<ul>{''.join(items)}</ul>"


def _device_text(device: str) -> str:
    return "the training worker" if device == OWN_DEVICE else device


def _device_table(measurements: Sequence[Mapping[str, Any]]) -> str:
    """Every device measurement of the compared variants (latest per variant and device), with
    what measured it: the worker and the machine of its fingerprint."""
    e = html.escape
    head = (
        "<tr><th>Run</th><th>Format</th><th>Device</th><th>Worker</th><th>Machine</th>"
        "<th class='num'>p50 ms</th><th class='num'>p90 ms</th><th class='num'>p99 ms</th>"
        "<th class='num'>Runs timed</th><th>Stable</th><th>Measured</th></tr>"
    )
    body = []
    for m in measurements:
        f, fp = m.get("figures") or {}, m.get("fingerprint") or {}
        machine = " · ".join(str(fp[k]) for k in ("machine", "cpu", "cpu_count") if fp.get(k) is not None)
        stable = (
            "unstable: machine busy"
            if f.get("latency_unstable")
            else ("yes" if f.get("latency_cv") is not None else "–")
        )
        body.append(
            f"<tr><td>#{e(str(m.get('run_id')))}</td><td>{e(str(m.get('format') or ''))}</td>"
            f"<td>{e(str(m.get('device') or ''))}</td><td>{e(str(m.get('worker') or ''))}</td><td>{e(machine)}</td>"
            f"<td class='num'>{_num(f.get('latency_p50_ms'), '.4g')}</td>"
            f"<td class='num'>{_num(f.get('latency_p90_ms'), '.4g')}</td>"
            f"<td class='num'>{_num(f.get('latency_p99_ms'), '.4g')}</td>"
            f"<td class='num'>{_num(f.get('latency_count'), ',.0f')}</td><td>{e(stable)}</td>"
            f"<td>{e(str(m.get('measured_at') or '')[:19])}</td></tr>"
        )
    return f"<table><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"


def report_html(
    rows: Sequence[Mapping[str, Any]],
    figures: Mapping[str, Mapping[str, Any]],
    runs: Sequence[Mapping[str, Any]],
    *,
    title: str = "optiboard comparison",
    generated_at: dt.datetime | None = None,
    measurements: Sequence[Mapping[str, Any]] = (),
    device: str | None = None,
    groups: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    """The whole report as one HTML string (a few MB: Plotly.js is inlined). `measurements`:
    the compared variants' device measurements (a table of their own); `device`: whose latency
    the figures and the variants table show (named under the title); `groups`: the seed-group
    rows (backend.store.groups.group_rows), shown as a table of means with 95 % intervals."""
    when = (generated_at or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M UTC")
    blocks = []
    for i, (name, fig) in enumerate(figures.items()):
        div_id = f"fig-{i}"
        payload = _json_for_script({"data": fig.get("data", []), "layout": fig.get("layout", {})})
        blocks.append(
            f"<h2>{html.escape(_FIGURE_TITLES.get(name, name))}</h2>"
            f"<div class='card'><div id='{div_id}' class='fig' data-name='{html.escape(name)}'>"
            "</div></div>"
            f"<script type='application/json' data-figure='{div_id}'>{payload}</script>"
        )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style>"
        f"<script>{_plotly_js()}</script></head><body><main>"
        f"<h1>{html.escape(title)}</h1>"
        f"<p class='meta'>{len(runs)} runs · {len(rows)} variants · generated {when}"
        f"{' · latency and memory as measured on ' + html.escape(_device_text(device)) if device else ''}</p>"
        f"<h2>Runs</h2>{_runs_list(runs)}"
        f"{''.join(blocks)}"
        + (f"<h2>Seed groups</h2><div class='card'>{_group_table(groups)}</div>" if groups else "")
        + f"<h2>Variants</h2><p class='meta'>{html.escape(baseline_text(rows))}</p>"
        f"<div class='card'>{_table(rows)}</div><p class='meta'>{html.escape(PROTOCOL_NOTE)}</p>"
        + (f"<h2>Measured on devices</h2><div class='card'>{_device_table(measurements)}</div>" if measurements else "")
        + f"<script>{_BOOT}</script></main></body></html>"
    )
