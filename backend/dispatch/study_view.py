"""What the study page, the CLI and the client read about one study: its trials with recipes
and outcomes, the hypervolume against trials and worker-minutes, the best feasible trial per
objective (or the closest miss), the Pareto front and the budget. Plain data (JSON-ready)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from backend.dispatch import study_rules
from backend.dispatch.studies import bar_of, budget_left, budget_used, recipe_of, trial_point, worker_seconds
from backend.store import studies, variants
from backend.store.studies import StudyRecord, TrialRecord
from runspec.studies import QUALITY_OBJECTIVES, StudySpec, direction


def study_summary(study: StudyRecord, trials: list[TrialRecord], now: datetime) -> dict[str, Any]:
    """The study's row as the list shows it: its fields, trial counts and budget. `bar` is None
    while a study from an uploaded model has no reference (its baseline run has not succeeded),
    and `note` says it is waiting for that run;
    `left_out_chains` maps default chains this baseline cannot take to why."""
    spec = study.study_spec()
    waiting = study.waiting_for_baseline
    used = budget_used(study, trials, now)
    counts = {s: sum(1 for t in trials if t.state == s) for s in ("running", "complete", "pruned", "failed")}
    counts["feasible"] = sum(1 for t in trials if t.feasible)
    return {
        "id": study.id,
        "name": study.name,
        "experiment": study.experiment,
        "baseline_run_id": study.baseline_run_id or None,
        "baseline_model_id": spec.baseline_model_id,
        "objectives": study.objectives,
        "directions": [direction(o) for o in study.objectives],
        "constraint": study.constraint,
        # no reference while waiting for the baseline run, nor after it failed
        "bar": bar_of(spec, study.reference) if study.reference else None,
        "note": f"waiting for the baseline run {study.baseline_run_id}" if waiting else None,
        "left_out_chains": study.left_out_chains,
        "strategy": study.strategy,
        "seed": study.seed,
        "status": study.status,
        "stop_reason": study.stop_reason,
        "error": study.error,
        "reference": study.reference,
        "created_at": study.created_at,
        "started_at": study.started_at,
        "finished_at": study.finished_at,
        "trial_counts": counts,
        "budget": {"limits": spec.budget.model_dump(), "used": used, "left": budget_left(spec.budget, used)},
    }


def _trial(spec: StudySpec, study: StudyRecord, t: TrialRecord, now: datetime) -> dict[str, Any]:
    bar = bar_of(spec, study.reference)
    metric = None if t.constraint_value is None else bar - t.constraint_value
    return {
        "number": t.number,
        "run_id": t.run_id,
        "state": t.state,
        "feasible": t.feasible,
        "recipe": recipe_of(t.params, spec.search_space, spec.strategy),
        "params": t.params,
        "values": dict(zip(spec.objectives, t.values, strict=True)) if t.values is not None else None,
        "constraint_metric": metric,
        "constraint_value": t.constraint_value,
        "pruned_reason": t.pruned_reason,
        "worker_seconds": worker_seconds(t, now),
        "run_status": t.run_status,
        "run_progress": t.run_progress,
        "summary": t.run_summary,
        "created_at": t.created_at,
        "told_at": t.told_at,
    }


def _front(points: list[tuple[int, float, float]]) -> list[int]:
    """Trial numbers on the 2-D Pareto front (cost minimised, metric maximised)."""
    front, best = [], -float("inf")
    for number, _, y in sorted(points, key=lambda p: (p[1], -p[2])):
        if y > best:
            front.append(number)
            best = y
    return front


def study_detail(session: Session, study: StudyRecord, *, include_infeasible: bool, now: datetime) -> dict[str, Any]:
    """Everything about one study (module docstring). "best" and "front" hold feasible trials
    only unless `include_infeasible`."""
    spec = study.study_spec()
    trials = studies.list_trials(session, study_id=study.id)
    out = study_summary(study, trials, now)
    out["spec"] = spec.model_dump(mode="json")
    out["trials"] = [_trial(spec, study, t, now) for t in trials]
    # Hypervolume after each told trial, against trials told and worker-minutes spent by then.
    told = sorted((t for t in trials if t.state != "running"), key=lambda t: (t.told_at or t.created_at, t.number))
    history = study_rules.hypervolume_history([trial_point(spec, study.reference, t) for t in told])
    minutes, spent = [], 0.0
    for t in told:
        spent += worker_seconds(t, now) / 60.0
        minutes.append(spent)
    out["hypervolume"] = [
        {"trials": i + 1, "number": t.number, "hypervolume": h, "worker_minutes": w}
        for i, (t, h, w) in enumerate(zip(told, history, minutes, strict=True))
    ]
    complete = [t for t in trials if t.state == "complete" and t.values is not None]
    shown = complete if include_infeasible else [t for t in complete if t.feasible]
    run_variants = {
        v.run_id: v
        for v in variants.list_variants(session, run_ids=[t.run_id for t in shown if t.run_id])
        if v.format.startswith("tflite-")
    }
    best = []
    for i, objective in enumerate(spec.objectives):
        if not shown:
            break
        sign = 1 if direction(objective) == "minimize" else -1
        top = min(shown, key=lambda t: (sign * (t.values or [])[i], t.number))
        variant = run_variants.get(top.run_id or 0)
        best.append(
            {
                "objective": objective,
                "direction": direction(objective),
                "number": top.number,
                "run_id": top.run_id,
                "value": (top.values or [])[i],
                "feasible": top.feasible,
                "variant_id": variant.id if variant else None,
                "download": f"/api/variants/{variant.id}/download" if variant else None,
            }
        )
    out["best"] = best
    misses = [t for t in complete if not t.feasible and t.constraint_value is not None]
    out["closest_miss"] = (
        None
        if any(t.feasible for t in complete) or not misses
        else _trial(spec, study, min(misses, key=lambda t: t.constraint_value or 0.0), now)
    )
    cost_i = list[str](spec.objectives).index(spec.cost_objective)
    bar = bar_of(spec, study.reference) if study.reference else 0.0  # no trial before the reference
    points = [(t.number, (t.values or [])[cost_i], bar - (t.constraint_value or 0.0)) for t in shown]
    out["front"] = _front(points)
    out["include_infeasible"] = include_infeasible
    out["quality_objectives"] = [o for o in spec.objectives if o in QUALITY_OBJECTIVES]
    return out


def _count(objective: str, value: Any) -> Any:
    counts = objective.endswith("_bytes") or objective.endswith("params")
    return int(value) if counts and isinstance(value, float) and value.is_integer() else value


TRIAL_COLUMNS = ("number", "run_id", "state", "feasible", "constraint_metric", "worker_seconds", "pruned_reason")


def trial_table(detail: dict[str, Any], *, include_infeasible: bool) -> tuple[list[str], list[dict[str, Any]]]:
    """The study's trials as export rows and their columns: TRIAL_COLUMNS, then one column per
    objective (its unit in the name: `gzip_bytes`, `latency_p50_ms`, accuracy a fraction 0–1),
    then the recipe's settings (`chain`, `export`, then `<technique>.<setting>` sorted). Only
    feasible trials (complete and meeting the constraint) unless `include_infeasible`, which
    gives every trial, running, pruned and failed ones too. `detail` is study_detail's output."""
    trials = [t for t in detail["trials"] if include_infeasible or t["feasible"]]
    settings = sorted({k for t in trials for k in t["recipe"]} - {"chain", "export"})
    recipe_columns = ["chain", "export", *settings]
    columns = [*TRIAL_COLUMNS, *detail["objectives"], *recipe_columns]
    rows = []
    for t in trials:
        row = {c: t[c] for c in TRIAL_COLUMNS}
        # Counts (bytes, parameters) are stored as Optuna's floats: written as integers.
        row.update({k: _count(k, v) for k, v in (t["values"] or {}).items()})
        row.update({c: t["recipe"].get(c) for c in recipe_columns})
        rows.append(row)
    return columns, rows
