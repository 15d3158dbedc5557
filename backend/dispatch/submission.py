"""Submitting runs: checks that need the database, the row, the commit, then the job.

The job is sent only after the commit that created the row, so a worker can never receive an
id it cannot read. If the broker is down the run stays queued with no task id and the
dispatcher in the API's background loop sends it later: nothing is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from backend.core.errors import Invalid, Problem
from backend.dispatch.outage import BROKER as OUTAGE
from backend.dispatch.queue import JobQueue
from backend.store import datasets, runs, variants
from backend.store.records import RunRecord
from runspec.architectures import check_spec_semantics
from runspec.spec import DistillationSpec, ModelSpec, RunSpec

log = logging.getLogger(__name__)

def _finished_model(session: Session, run_id: int) -> str | None:
    """None if the run has a stored Keras model to start from, else why not."""
    run = runs.get_run(session, run_id=run_id)
    if run is None:
        return f"run {run_id} does not exist"
    if run.status != "succeeded":
        return f"run {run_id} is {run.status}, not a finished (succeeded) run"
    if not any(v.format == "keras" for v in variants.list_variants(session, run_ids=[run_id])):
        return f"run {run_id} has no stored Keras model"
    return None


def reference_problems(session: Session, spec: RunSpec, loc: tuple[Any, ...] = ("body",)) -> list[Problem]:
    problems: list[Problem] = []
    teacher_model: ModelSpec | None = None
    for i, t in enumerate(spec.techniques):
        if isinstance(t, DistillationSpec):
            why = _finished_model(session, t.teacher_run_id)
            if why:
                problems.append(((*loc, "techniques", i, "teacher_run_id"), f"teacher {why}"))
            else:
                teacher = runs.get_run(session, run_id=t.teacher_run_id)
                if teacher is not None:
                    teacher_model = RunSpec.model_validate(teacher.spec).model
    if spec.kind == "optimize" and spec.parent_run_id is not None:
        why = _finished_model(session, spec.parent_run_id)
        if why:
            problems.append(((*loc, "parent_run_id"), f"parent {why}"))
    if spec.model.init_from_run_id is not None:
        why = _finished_model(session, spec.model.init_from_run_id)
        if why:
            problems.append(((*loc, "model", "init_from_run_id"), f"starting point {why}"))
    if spec.dataset.name == "upload" and spec.dataset.upload_id is not None:
        if datasets.get_dataset(session, dataset_id=spec.dataset.upload_id) is None:
            problems.append(((*loc, "dataset", "upload_id"), f"dataset {spec.dataset.upload_id} does not exist"))
    for path, msg in check_spec_semantics(spec, teacher_model=teacher_model):
        parts = tuple(int(p) if p.isdigit() else p for p in str(path).split("."))
        problems.append(((*loc, *parts), msg))
    return problems


def raise_if_problems(problems: Sequence[Problem]) -> None:
    """Raises `Invalid` (HTTP 422 naming each field) when there is any problem."""
    if problems:
        raise Invalid(problems)


def create_checked(session: Session, spec: RunSpec, *, max_attempts: int) -> RunRecord:
    raise_if_problems(reference_problems(session, spec))
    return runs.create_run(session, spec=spec, max_attempts=max_attempts)


def commit_and_enqueue(session: Session, queue: JobQueue, created: Sequence[RunRecord]) -> None:
    session.commit()
    for run in created:
        if run.external:
            continue
        try:
            task_id = queue.enqueue_run(run_id=run.id, kind=run.kind)
        except Exception as e:  # broker unreachable: the dispatcher retries from the database
            OUTAGE.failed(e, f"run {run.id} is stored and queued; the dispatcher will send it")
            continue
        OUTAGE.recovered()
        runs.set_task_id(session, run_id=run.id, task_id=task_id)
    session.commit()
