"""Compare runs: the table with deltas, the three figures, and the CSV/JSON/HTML exports."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from sqlalchemy.orm import Session

from backend import figures
from backend.api.deps import Authenticated, SessionDep
from backend.api.schemas import MeasurementPublic, RunPublic, VariantPublic
from backend.core.errors import Invalid, NotFound
from backend.figures.devices import device_columns, on_device
from backend.figures.table import compare_rows, group_rows_csv, rows_csv
from backend.store import groups as group_store
from backend.store import measurements, metrics, variants
from backend.store import runs as run_store
from runspec.vocabulary import (
    DEFAULT_SUMMARY,
    DEVICE_LABEL_PATTERN,
    LOGGED_ACCURACY_KEYS,
    MAX_ID,
    OWN_DEVICE,
    SUMMARIES,
    SUMMARY_COLUMNS,
)

router = APIRouter(prefix="/api", tags=["compare"], dependencies=Authenticated)

MAX_RUNS = 200
LOSS_KEYS = ("loss", "val_loss")
LOSS_POINT_BUDGET = 24_000
XAxis = Literal[
    "size_bytes", "gzip_bytes", "params", "latency_p50_ms", "latency_p90_ms", "peak_memory_bytes", "mcu_ram_bytes"
]
RunsQuery = Annotated[str, Query(max_length=1000, description="comma-separated run ids, e.g. 1,2,3")]
_RUN_LIST = re.compile(r"\s*\d{1,10}(\s*,\s*\d{1,10})*\s*,?\s*")
BaselineQuery = Annotated[int | None, Query(ge=1, le=MAX_ID, description="run the deltas refer to")]
XQuery = Annotated[XAxis, Query(description="cost on the x axis of the trade-off figure")]
DeviceQuery = Annotated[
    str,
    Query(
        pattern=DEVICE_LABEL_PATTERN,
        description=f"whose latency and memory figures to show: {OWN_DEVICE!r} (the training worker's own) or a "
        "device label the variants were measured on",
    ),
]


Summary = Literal["best", "last", "min", "max"]
assert set(Summary.__args__) == set(SUMMARIES)  # type: ignore[attr-defined]
GroupsQuery = Annotated[
    bool,
    Query(
        description="also aggregate the runs by seed group (runs whose specs differ only by seed): `groups.rows` "
        "has one row per group and format with each figure's mean, n, std and 95 % Student-t interval "
        "(`<figure>`, `<figure>_n`, `<figure>_std`, `<figure>_ci_low`, `<figure>_ci_high`), the member run ids, "
        "and its differences against the baseline's group with Welch's 95 % interval and whether it excludes 0; "
        "the figures then show group means with error bars and mean curves with bands; the CSV export lists "
        "the group rows"
    ),
]
SummaryQuery = Annotated[
    Summary,
    Query(
        description="which value of each logged series the table, exports and an external run's accuracy show: "
        + "; ".join(f"{k}: {v}" for k, v in SUMMARIES.items())
    ),
]


def _run_ids(raw: str) -> list[int]:
    """The run ids of `?runs=1,2,3` in order, duplicates dropped; 422 at query.runs for
    anything else (a user sees "comma-separated run ids", not the pattern that checks it)."""
    if not _RUN_LIST.fullmatch(raw):
        shown = raw if len(raw) <= 40 else raw[:40] + "…"
        raise Invalid.at(("query", "runs"), f"comma-separated run ids, e.g. 1,2,3 (got {shown!r})")
    ids = list(dict.fromkeys(int(p) for p in raw.split(",") if p.strip()))
    if any(not 1 <= i <= MAX_ID for i in ids):
        raise Invalid.at(("query", "runs"), f"run ids are 1 to {MAX_ID}")
    if len(ids) > MAX_RUNS:
        raise Invalid.at(("query", "runs"), f"at most {MAX_RUNS} runs")
    return ids


def _comparison(
    session: Session,
    raw_runs: str,
    baseline: int | None,
    x: str,
    device: str = OWN_DEVICE,
    summary: str = DEFAULT_SUMMARY,
    *,
    with_figures: bool,
    groups: bool = False,
) -> dict[str, Any]:
    ids = _run_ids(raw_runs)
    records = run_store.get_runs(session, run_ids=ids)
    missing = sorted(set(ids) - {r.id for r in records})
    if missing:
        names = ", ".join(map(str, missing))
        raise NotFound(f"runs not found: {names}")
    run_docs = [RunPublic.of(r).model_dump(mode="json") for r in records]
    variant_docs = [VariantPublic.of(v).model_dump(mode="json") for v in variants.list_variants(session, run_ids=ids)]
    measured = {
        key: MeasurementPublic.of(r).model_dump(mode="json")
        for key, r in measurements.latest_succeeded(session, run_ids=ids).items()
    }
    devices = sorted({d for _, d in measured})
    if device != OWN_DEVICE and device not in devices:
        raise Invalid.at(
            ("query", "device"),
            f"no variant of these runs was measured on {device!r} (measured on: {', '.join(devices) or 'no device'})",
        )
    variant_docs = on_device(variant_docs, measured, device)
    # optimize runs are labelled by their parent's recipe, selected or not
    parent_ids = sorted({int(r.parent_run_id) for r in records if r.parent_run_id})
    parents = (
        {p.id: RunPublic.of(p).model_dump(mode="json") for p in run_store.get_runs(session, run_ids=parent_ids)}
        if parent_ids
        else {}
    )
    if baseline is not None and baseline not in ids:
        raise Invalid.at(
            ("query", "baseline"), f"run {baseline} is not among the compared runs ({', '.join(map(str, ids))})"
        )
    if baseline is not None and not any(v["run_id"] == baseline for v in variant_docs):
        raise Invalid.at(("query", "baseline"), f"run {baseline} has no measured model to compare against")
    # each run's same-budget control, compared or not: its variants give the "vs control" columns
    control_ids = sorted({int(r.control_run_id) for r in records if r.control_run_id})
    controls: dict[int, list[dict[str, Any]]] = {i: [] for i in control_ids}
    for cv in variants.list_variants(session, run_ids=control_ids) if control_ids else []:
        controls[cv.run_id].append(VariantPublic.of(cv).model_dump(mode="json"))
    logged = metrics.summarize_metrics(
        session.connection(),
        run_ids=ids,
        keys=list(dict.fromkeys((*SUMMARY_COLUMNS, *LOGGED_ACCURACY_KEYS))),
        how=summary,
    )
    rows, reference = compare_rows(
        run_docs,
        variant_docs,
        baseline_run_id=baseline,
        x=x,
        parents=parents,
        logged=logged,
        summary=summary,
        controls=controls,
    )
    rows, per_device = device_columns(rows, measured, devices)
    out: dict[str, Any] = {
        "runs": run_docs,
        "rows": rows,
        "baseline": reference,
        "x": x,
        "device": device,
        "summary": summary,
        # the training worker's own measurements, then every device a variant was measured on
        "devices": [OWN_DEVICE, *devices],
        "device_columns": per_device,
        "measurements": list(measured.values()),
    }
    grouped: dict[str, Any] | None = None
    if groups:
        group_rows, group_ref = group_store.group_rows(
            rows,
            run_docs,
            baseline_run_id=reference["run_id"] if reference else None,
            baseline_format=reference["format"] if reference else None,
        )
        for row, on_front in zip(group_rows, figures.pareto_flags(group_rows, x, "accuracy"), strict=True):
            row["pareto"] = on_front and row["format"] != "logged"
        grouped = {
            "rows": group_rows,
            "baseline": group_ref,
            "metrics": list(group_store.GROUP_METRICS),
            "difference_metrics": list(group_store.DIFFERENCE_METRICS),
            "confidence": 0.95,
        }
        out["groups"] = grouped
    if with_figures:
        # One bulk read for every run (not a query per run), downsampled in the store.
        # ~24k points in all keeps the browser responsive with 100 runs (bench/dashboard.py);
        # each curve keeps its first, last, minimum and maximum per bucket, 800 points at most.
        per_series = max(100, min(800, LOSS_POINT_BUDGET // max(1, len(ids) * len(LOSS_KEYS))))
        many = metrics.read_series_many(session, run_ids=ids, keys=list(LOSS_KEYS), max_points=per_series)
        series_by_run = {
            # the run id keeps two runs with the same name apart in the legend
            f"#{r.id} {r.name}": {k: {"steps": s.steps, "values": s.values} for k, s in many.get(r.id, {}).items()}
            for r in records
        }
        out["figures"] = {
            "tradeoff": figures.tradeoff_figure(rows, x=x, device=_device_name(device)),
            "latency": figures.latency_figure(rows, device=_device_name(device)),
            "loss": figures.loss_figure(series_by_run, keys=LOSS_KEYS),
        }
        if grouped is not None:
            members: dict[str, list[int]] = {}
            labels: dict[str, str] = {}
            for r in records:
                members.setdefault(r.group_key, []).append(r.id)
                labels.setdefault(r.group_key, group_store.group_name([r.name]))
            by_id = {r.id: r.name for r in records}
            raw: dict[int, dict[str, dict[str, Any]]] = {
                rid: {k: {"steps": s.steps, "values": s.values} for k, s in ks.items()} for rid, ks in many.items()
            }
            curves = {
                key: {k: group_store.mean_curves(raw, ids_, k) for k in LOSS_KEYS} for key, ids_ in members.items()
            }
            out["figures"]["tradeoff"] = figures.tradeoff_figure(
                grouped["rows"], x=x, device=_device_name(device), grouped=True
            )
            out["figures"]["loss"] = figures.group_loss_figure(
                curves,
                {key: {f"#{rid} {by_id[rid]}": raw.get(rid, {}) for rid in ids_} for key, ids_ in members.items()},
                labels=labels,
                keys=LOSS_KEYS,
            )
    return out


def _device_name(device: str) -> str:
    return "the training worker" if device == OWN_DEVICE else device


def _attachment(name: str) -> dict[str, str]:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    return {"Content-Disposition": f'attachment; filename="optiboard-compare-{stamp}.{name}"'}


@router.get("/compare")
def read_comparison(
    session: SessionDep,
    runs: RunsQuery,
    baseline: BaselineQuery = None,
    x: XQuery = "size_bytes",
    device: DeviceQuery = OWN_DEVICE,
    summary: SummaryQuery = "best",
    groups: GroupsQuery = False,
) -> Response:
    """Runs side by side: a row per variant with deltas, and loss/trade-off/latency figures."""
    data = _comparison(session, runs, baseline, x, device, summary, with_figures=True, groups=groups)
    # Encoded by orjson: FastAPI's encoder walked every point of the loss figure (~16,000
    # values for 100 runs) and took longer than building the comparison.
    return Response(orjson.dumps(data), media_type="application/json")


@router.get("/compare.csv", response_class=PlainTextResponse)
def export_csv(
    session: SessionDep,
    runs: RunsQuery,
    baseline: BaselineQuery = None,
    x: XQuery = "size_bytes",
    device: DeviceQuery = OWN_DEVICE,
    summary: SummaryQuery = "best",
    groups: GroupsQuery = False,
) -> PlainTextResponse:
    """The comparison table as CSV (with groups=true: one line per seed group and format)."""
    data = _comparison(session, runs, baseline, x, device, summary, with_figures=False, groups=groups)
    text = group_rows_csv(data["groups"]["rows"]) if groups else rows_csv(data["rows"], data["device_columns"])
    return PlainTextResponse(text, media_type="text/csv; charset=utf-8", headers=_attachment("csv"))


@router.get("/compare.json")
def export_json(
    session: SessionDep,
    runs: RunsQuery,
    baseline: BaselineQuery = None,
    x: XQuery = "size_bytes",
    device: DeviceQuery = OWN_DEVICE,
    summary: SummaryQuery = "best",
    groups: GroupsQuery = False,
) -> JSONResponse:
    """The comparison table and its runs as a JSON file (with groups=true: and the seed groups)."""
    data = _comparison(session, runs, baseline, x, device, summary, with_figures=False, groups=groups)
    return JSONResponse(data, headers=_attachment("json"))


@router.get("/compare/report.html", response_class=HTMLResponse)
def export_report(
    session: SessionDep,
    runs: RunsQuery,
    baseline: BaselineQuery = None,
    x: XQuery = "size_bytes",
    device: DeviceQuery = OWN_DEVICE,
    summary: SummaryQuery = "best",
    groups: GroupsQuery = False,
) -> HTMLResponse:
    """A self-contained HTML report (Plotly.js and figures inlined) that opens offline."""
    data = _comparison(session, runs, baseline, x, device, summary, with_figures=True, groups=groups)
    html = figures.report_html(
        data["rows"],
        data["figures"],
        data["runs"],
        measurements=data["measurements"],
        device=data["device"],
        groups=data["groups"]["rows"] if groups else None,
    )
    return HTMLResponse(html, headers=_attachment("html"))


@router.get("/variants/{variant_id}/figures/confusion")
def read_confusion_figure(variant_id: int, session: SessionDep) -> dict[str, Any]:
    """The variant's confusion matrix as a Plotly heat map (rows: true class)."""
    v = variants.get_variant(session, variant_id=variant_id)
    if v is None:
        raise NotFound(f"variant {variant_id} not found")
    labels = v.extra.get("class_names") if isinstance(v.extra.get("class_names"), list) else None
    if labels is not None and len(labels) != len(v.confusion):
        labels = None
    return figures.confusion_figure(v.confusion, labels)
