"""A study whose baseline is an uploaded model (issue 20 item 1), on a real database (SQLite and
PostgreSQL) with a recording queue: the API's create path makes the baseline run and the study
waits for it; the uploaded model's preflight and the no-distillation rule take chains out of the
default space (a 422 naming the chain when listed); a failed or cancelled baseline run ends the
study `failed`; a restarted loop picks up a study still waiting. Also: a study from a finished run
OF an uploaded model gets the same chain rules. No TensorFlow here (tests/studies/
test_study_from_upload_live.py runs the real thing)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from backend.core.errors import Conflict, Invalid
from backend.dispatch import studies as loop
from backend.dispatch.study_view import study_detail
from backend.store import runs, studies, uploaded_models
from backend.store.db import make_engine, make_sessionmaker, unit_of_work
from backend.store.models import utcnow
from runspec.studies import StudySpec
from tests.factories import make_run, make_variant
from tests.studies.test_study_loop import RecordingQueue

NO_CLUSTERING = "tfmot cannot cluster layer 'odd' (OddLayer)"


@pytest.fixture
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def _model(factory: sessionmaker[Session], *, cluster: str = "no") -> int:
    """A stored Keras 3 upload taking digits' (8, 8, 1) with 10 outputs whose preflight says
    clustering is `cluster` (with NO_CLUSTERING as the reason when "no")."""
    preflight = {
        "inputs": [{"shape": [None, 8, 8, 1]}],
        "outputs": [{"shape": [None, 10]}],
        "tf_keras_copy": {"status": "yes", "reason": None},
        "techniques": {
            "prune": {"status": "yes", "reason": None},
            "qat": {"status": "fix", "reason": "with a fix for: rescaling"},
            "cluster": {"status": cluster, "reason": NO_CLUSTERING if cluster == "no" else None},
            "int8": {"status": "yes", "reason": None},
        },
        "layers": [{"name": "rescale", "class": "Rescaling"}],
    }
    with unit_of_work(factory) as s:
        return uploaded_models.add_model(
            s,
            name="user cnn",
            original_filename="m.keras",
            filename="models/m.keras",
            sha256="0" * 64,
            size_bytes=1000,
            format="keras",
            keras_flavour="keras3",
            status="ready",
            preflight=preflight,
        ).id


def _spec(model_id: int, **over: Any) -> StudySpec:
    return StudySpec.model_validate(
        {"name": "from upload", "baseline_model_id": model_id, "dataset": {"name": "digits"}, **over}
    )


def _finish_baseline(factory: sessionmaker[Session], run_id: int, *, status: str = "succeeded") -> None:
    with unit_of_work(factory) as s:
        lease = runs.claim_run(s, run_id=run_id, worker="w")
        if status == "succeeded":
            make_variant(s, run_id, "uploaded", accuracy=0.91, size_bytes=30_000)
            make_variant(s, run_id, "keras", accuracy=0.91, size_bytes=30_000)
            make_variant(s, run_id, "tflite-float32", accuracy=0.90, size_bytes=12_000)
        runs.finish_run(s, run_id=run_id, lease=lease, status=status, error=None if status == "succeeded" else "boom")


def test_exactly_one_baseline_and_a_dataset_with_a_model() -> None:
    for body in ({}, {"baseline_run_id": 1, "baseline_model_id": 2, "dataset": {"name": "digits"}}):
        with pytest.raises(ValidationError) as e:
            StudySpec.model_validate(body)
        assert "baseline_run_id" in str(e.value) and "baseline_model_id" in str(e.value)
    with pytest.raises(ValidationError, match="dataset"):
        StudySpec.model_validate({"baseline_model_id": 2})
    with pytest.raises(ValidationError, match="leave dataset out"):
        StudySpec.model_validate({"baseline_run_id": 1, "dataset": {"name": "digits"}})


def test_a_model_baseline_creates_its_run_waits_for_it_and_survives_a_restart(
    factory: sessionmaker[Session], db_url: str
) -> None:
    model_id = _model(factory)
    with unit_of_work(factory) as s:
        study, created = loop.create_study_and_runs(s, _spec(model_id, budget={"max_trials": 4}))
        s.commit()
    assert study.status == "queued" and study.reference == {} and study.waiting_for_baseline
    assert [r.id for r in created] == [study.baseline_run_id]
    base = created[0]
    assert base.status == "queued" and f"study-baseline:{study.id}" in base.tags
    assert base.spec["model"]["upload_id"] == model_id and base.spec["training"]["epochs"] == 0
    assert base.spec["exports"] == ["float32"] and base.spec["techniques"] == []
    assert base.spec["dataset"]["normalize"] == "none"  # the model scales its own inputs (Rescaling)
    # Clustering is "no" in the preflight, distillation needs a built-in architecture: left out, with why.
    assert study.study_spec().search_space.chains == ["pruning", "pruning+qat"]
    left = study.left_out_chains
    assert set(left) == {"clustering", "clustering+qat", "pruning+clustering", "distillation+pruning"}
    assert NO_CLUSTERING in left["clustering"] and "no architecture here to shrink" in left["distillation+pruning"]
    with unit_of_work(factory) as s:
        view = study_detail(s, studies.get_study(s, study_id=study.id), include_infeasible=False, now=utcnow())  # type: ignore[arg-type]
    assert view["note"] == f"waiting for the baseline run {base.id}" and view["bar"] is None
    assert view["baseline_model_id"] == model_id and view["baseline_run_id"] == base.id

    queue = RecordingQueue()
    assert loop.tick(factory, queue, slots=lambda: 2) == 0  # type: ignore[arg-type]
    with unit_of_work(factory) as s:
        assert studies.get_study(s, study_id=study.id).status == "queued"  # type: ignore[union-attr]
    # The baseline run succeeds; a restarted API (a new engine, no state) takes the study up.
    _finish_baseline(factory, base.id)
    restarted = make_sessionmaker(make_engine(db_url))
    assert loop.tick(restarted, queue, slots=lambda: 2) == 2  # type: ignore[arg-type]
    with unit_of_work(factory) as s:
        now = studies.get_study(s, study_id=study.id)
        trials = studies.list_trials(s, study_id=study.id)
        trial_runs = [runs.get_run(s, run_id=t.run_id or 0) for t in trials]
    assert now is not None and now.status == "running" and not now.waiting_for_baseline
    assert now.reference["format"] == "tflite-float32" and now.reference["accuracy"] == pytest.approx(0.90)
    assert all(r is not None and r.spec["model"]["init_from_run_id"] == base.id for r in trial_runs)
    assert all(r is not None and r.spec["model"]["upload_id"] is None for r in trial_runs)
    assert {t.params["chain"] for t in trials} <= {"pruning", "pruning+qat"}
    assert queue.sent == [t.run_id for t in trials]


def test_chains_the_model_cannot_take_are_refused_when_listed(factory: sessionmaker[Session]) -> None:
    model_id = _model(factory)
    with unit_of_work(factory) as s:
        with pytest.raises(Invalid) as e:
            loop.create_study(s, _spec(model_id, search_space={"chains": ["pruning", "clustering", "distillation"]}))
    locs = {loc: msg for loc, msg in e.value.problems}
    assert set(locs) == {("body", "search_space", "chains", 1), ("body", "search_space", "chains", 2)}
    assert NO_CLUSTERING in locs[("body", "search_space", "chains", 1)]
    assert "distillation" in locs[("body", "search_space", "chains", 2)]
    with unit_of_work(factory) as s:
        with pytest.raises(Invalid) as e:
            loop.create_study(s, _spec(model_id, dataset={"name": "cifar10"}))
    assert {loc for loc, _ in e.value.problems} == {("body", "dataset", "name")}
    with unit_of_work(factory) as s:
        with pytest.raises(Invalid) as e:
            loop.create_study(s, _spec(9999))
    assert e.value.problems == [(("body", "baseline_model_id"), "model 9999 does not exist")]


@pytest.mark.parametrize("ending", ["failed", "cancelled"])
def test_a_baseline_run_that_fails_fails_the_study(factory: sessionmaker[Session], ending: str) -> None:
    model_id = _model(factory, cluster="yes")
    with unit_of_work(factory) as s:
        study = loop.create_study(s, _spec(model_id))
    if ending == "failed":
        _finish_baseline(factory, study.baseline_run_id, status="failed")
    else:
        with unit_of_work(factory) as s:
            runs.request_cancel(s, run_id=study.baseline_run_id)
    assert loop.tick(factory, RecordingQueue(), slots=lambda: 2) == 0  # type: ignore[arg-type]
    with unit_of_work(factory) as s:
        ended = studies.get_study(s, study_id=study.id)
        assert ended is not None and ended.status == "failed" and ended.finished_at is not None
        assert ended.stop_reason == ended.error
        assert f"the baseline run {study.baseline_run_id} ended {ending}" in (ended.stop_reason or "")
        assert studies.list_trials(s, study_id=study.id) == []
        view = study_detail(s, ended, include_infeasible=False, now=utcnow())
        assert view["status"] == "failed" and view["bar"] is None and view["note"] is None
        with pytest.raises(Conflict):
            loop.extend(s, study_id=study.id, trials=5)


def test_stopping_a_waiting_study_cancels_its_baseline_run(factory: sessionmaker[Session]) -> None:
    model_id = _model(factory, cluster="yes")
    with unit_of_work(factory) as s:
        study = loop.create_study(s, _spec(model_id))
    with unit_of_work(factory) as s:
        loop.stop(s, study_id=study.id)
        assert runs.get_run(s, run_id=study.baseline_run_id).status == "cancelled"  # type: ignore[union-attr]


def test_a_finished_run_of_an_uploaded_model_gets_the_same_chain_rules(factory: sessionmaker[Session]) -> None:
    """Issue 20 item 1: before, distillation trials of such a baseline trained a seed CNN student
    (the run spec's default architecture), bigger than the uploaded model, and a technique the
    preflight refused was only found when its trial failed."""
    model_id = _model(factory)
    with unit_of_work(factory) as s:
        run = make_run(
            s, name="measured", dataset={"name": "digits"}, model={"upload_id": model_id}, training={"epochs": 0}
        )
        lease = runs.claim_run(s, run_id=run.id, worker="w")
        make_variant(s, run.id, "keras", accuracy=0.95, size_bytes=40_000)
        make_variant(s, run.id, "tflite-float32", accuracy=0.95, size_bytes=20_000)
        runs.finish_run(s, run_id=run.id, lease=lease, status="succeeded")
    with unit_of_work(factory) as s:
        study = loop.create_study(s, StudySpec(baseline_run_id=run.id))
    assert study.study_spec().search_space.chains == ["pruning", "pruning+qat"]
    assert "no architecture here to shrink" in study.left_out_chains["distillation+pruning"]
    with unit_of_work(factory) as s:
        with pytest.raises(Invalid) as e:
            loop.create_study(
                s,
                StudySpec.model_validate(
                    {"baseline_run_id": run.id, "search_space": {"chains": ["qat", "distillation"]}}
                ),
            )
    assert [loc for loc, _ in e.value.problems] == [("body", "search_space", "chains", 1)]
