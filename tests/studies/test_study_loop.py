"""The study loop on a real database (SQLite and PostgreSQL), a fake clock and a recording
queue: trials become queued runs for free worker slots, results are told once, hopeless trials
are pruned, and a restart (a new process's engine) or a second process never duplicates a trial."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from backend.dispatch import studies as loop
from backend.store import metrics, runs, studies
from backend.store import models as m
from backend.store.db import make_engine, make_sessionmaker, unit_of_work
from backend.store.metrics import Point
from runspec.studies import StudySpec
from tests.factories import make_run, make_variant


class RecordingQueue:
    """Stands in for the broker: remembers which runs were sent."""

    def __init__(self) -> None:
        self.sent: list[int] = []
        self._lock = threading.Lock()

    def enqueue_run(self, *, run_id: int, kind: str) -> str:
        with self._lock:
            self.sent.append(run_id)
        return f"task-{run_id}"


@pytest.fixture
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def _finished_baseline(factory: sessionmaker[Session]) -> int:
    with unit_of_work(factory) as s:
        run = make_run(s, name="baseline", dataset={"name": "digits"}, model={"architecture": "mlp"})
        lease = runs.claim_run(s, run_id=run.id, worker="w")
        make_variant(s, run.id, "keras", accuracy=0.95, size_bytes=40_000)
        make_variant(s, run.id, "tflite-float32", accuracy=0.95, size_bytes=20_000)
        runs.finish_run(s, run_id=run.id, lease=lease, status="succeeded")
        return run.id


def _study(factory: sessionmaker[Session], **over: Any) -> int:
    baseline = _finished_baseline(factory)
    spec = StudySpec.model_validate(
        {
            "name": "s",
            "baseline_run_id": baseline,
            "budget": {"max_trials": 5},
            "min_trials": 3,
            "search_space": {"chains": ["pruning", "clustering"]},
            **over,
        }
    )
    with unit_of_work(factory) as s:
        return loop.create_study(s, spec).id


def _trials(factory: sessionmaker[Session], study_id: int) -> list[studies.TrialRecord]:
    with unit_of_work(factory) as s:
        return studies.list_trials(s, study_id=study_id)


def _finish(factory: sessionmaker[Session], run_id: int, *, accuracy: float, gzip: int) -> None:
    with unit_of_work(factory) as s:
        lease = runs.claim_run(s, run_id=run_id, worker="w")
        make_variant(s, run_id, "tflite-int8", accuracy=accuracy, size_bytes=gzip)
        runs.finish_run(s, run_id=run_id, lease=lease, status="succeeded")


def test_trials_fill_free_slots_are_told_once_and_survive_a_restart(
    factory: sessionmaker[Session], db_url: str
) -> None:
    study_id = _study(factory)
    queue = RecordingQueue()
    assert loop.tick(factory, queue, slots=lambda: 2) == 2  # type: ignore[arg-type]
    trials = _trials(factory, study_id)
    assert [t.number for t in trials] == [0, 1] and all(t.state == "running" for t in trials)
    assert queue.sent == [t.run_id for t in trials]
    with unit_of_work(factory) as s:
        run = runs.get_run(s, run_id=trials[0].run_id or 0)
        row = s.get(m.Run, trials[0].run_id)
        assert row is not None and (row.study_id, row.trial_number) == (study_id, 0)
        assert run is not None and run.status == "queued" and run.spec["model"]["init_from_run_id"]
        assert studies.get_study(s, study_id=study_id).status == "running"  # type: ignore[union-attr]
    # Both slots are busy: nothing more is asked, by this process or a restarted one.
    assert loop.tick(factory, queue, slots=lambda: 2) == 0  # type: ignore[arg-type]
    restarted = make_sessionmaker(make_engine(db_url))
    assert loop.tick(restarted, queue, slots=lambda: 2) == 0  # type: ignore[arg-type]

    _finish(factory, trials[0].run_id or 0, accuracy=0.945, gzip=4_000)  # feasible: bar 0.94
    assert loop.tick(restarted, queue, slots=lambda: 2) == 1  # told, and its slot refilled
    assert loop.tick(factory, queue, slots=lambda: 2) == 0
    trials = _trials(factory, study_id)
    assert [t.number for t in trials] == [0, 1, 2]
    assert trials[0].state == "complete" and trials[0].values == [4_000.0, 0.945]
    assert trials[0].constraint_value == pytest.approx(0.94 - 0.945) and trials[0].feasible
    told_at = trials[0].told_at
    loop.tick(restarted, queue, slots=lambda: 2)  # type: ignore[arg-type]
    assert _trials(factory, study_id)[0].told_at == told_at  # told once

    # The sampler rebuilt from the rows holds every trial with its values and constraint.
    with unit_of_work(factory) as s:
        study = studies.get_study(s, study_id=study_id)
        assert study is not None
        rebuilt = loop.rebuild(study.study_spec(), studies.list_trials(s, study_id=study_id))
    assert [t.state.name for t in rebuilt.trials] == ["COMPLETE", "RUNNING", "RUNNING"]
    assert rebuilt.trials[0].constraints == {"bar": pytest.approx(-0.005)}
    with unit_of_work(factory) as s:
        assert s.scalar(select(func.count()).select_from(m.Run).where(m.Run.study_id == study_id)) == 3


def test_a_hopeless_trial_is_pruned_and_the_budget_ends_the_study(factory: sessionmaker[Session]) -> None:
    study_id = _study(factory, budget={"max_trials": 2})
    queue = RecordingQueue()
    loop.tick(factory, queue, slots=lambda: 2)  # type: ignore[arg-type]
    first, second = _trials(factory, study_id)
    with unit_of_work(factory) as s:  # trial 1 trains: three flat epochs at 50 % while the bar is 94 %
        lease = runs.claim_run(s, run_id=second.run_id or 0, worker="w")
        metrics.log_batch(
            s, run_id=second.run_id or 0, points=[Point("val_accuracy", i * 10, 0.5, 1.0) for i in range(3)]
        )
        runs.heartbeat(s, run_id=second.run_id or 0, lease=lease or "", progress=0.5)
    loop.tick(factory, queue, slots=lambda: 2)  # type: ignore[arg-type]
    with unit_of_work(factory) as s:
        row = s.get(m.Run, second.run_id)
        assert row is not None and row.cancel_requested
        runs.finish_run(s, run_id=second.run_id or 0, lease=lease, status="cancelled", error="cancelled by user")
    _finish(factory, first.run_id or 0, accuracy=0.90, gzip=3_000)  # infeasible: below the bar
    loop.tick(factory, queue, slots=lambda: 2)  # type: ignore[arg-type]
    first, second = _trials(factory, study_id)
    assert second.state == "pruned" and "pruned-infeasible after 3 epochs" in (second.pruned_reason or "")
    assert first.state == "complete" and first.feasible is False
    with unit_of_work(factory) as s:
        study = studies.get_study(s, study_id=study_id)
    assert study is not None and study.status == "finished" and study.stop_reason == "trial budget spent"
    assert len(queue.sent) == 2


def test_a_wall_budget_is_read_on_the_fake_clock_and_extend_restarts(factory: sessionmaker[Session]) -> None:
    study_id = _study(factory, budget={"max_trials": None, "wall_seconds": 3600})
    queue = RecordingQueue()
    loop.tick(factory, queue, slots=lambda: 1)  # type: ignore[arg-type]
    (only,) = _trials(factory, study_id)
    _finish(factory, only.run_id or 0, accuracy=0.95, gzip=5_000)
    later = lambda: m.utcnow() + timedelta(hours=2)  # noqa: E731
    assert loop.tick(factory, queue, slots=lambda: 1, clock=later) == 0  # type: ignore[arg-type]
    with unit_of_work(factory) as s:
        assert studies.get_study(s, study_id=study_id).status == "finished"  # type: ignore[union-attr]
        loop.extend(s, study_id=study_id, wall_seconds=3 * 3600)
    assert loop.tick(factory, queue, slots=lambda: 1, clock=later) == 1  # type: ignore[arg-type]
    with unit_of_work(factory) as s:
        loop.pause(s, study_id=study_id)
    _finish(factory, _trials(factory, study_id)[1].run_id or 0, accuracy=0.95, gzip=6_000)
    assert loop.tick(factory, queue, slots=lambda: 1) == 0  # type: ignore[arg-type]
    assert _trials(factory, study_id)[1].state == "complete"  # a paused study still hears results
    with unit_of_work(factory) as s:
        loop.resume(s, study_id=study_id)
    assert loop.tick(factory, queue, slots=lambda: 1) == 1  # type: ignore[arg-type]
    with unit_of_work(factory) as s:
        loop.stop(s, study_id=study_id)
    loop.tick(factory, queue, slots=lambda: 1)  # type: ignore[arg-type]
    trials = _trials(factory, study_id)
    assert trials[-1].run_status == "cancelled"


def test_two_processes_ticking_at_once_ask_for_each_slot_once(factory: sessionmaker[Session], db_url: str) -> None:
    study_id = _study(factory, budget={"max_trials": 10})
    queue = RecordingQueue()
    factories = [factory, make_sessionmaker(make_engine(db_url))]
    barrier = threading.Barrier(2)

    def run(f: sessionmaker[Session]) -> None:
        barrier.wait()
        loop.tick(f, queue, slots=lambda: 3)  # type: ignore[arg-type]

    threads = [threading.Thread(target=run, args=(f,)) for f in factories]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    trials = _trials(factory, study_id)
    assert [t.number for t in trials] == [0, 1, 2]
    assert sorted(queue.sent) == sorted(t.run_id for t in trials)


def test_grid_enumerates_distinct_recipes_and_asks_each_once(factory: sessionmaker[Session]) -> None:
    study_id = _study(
        factory,
        strategy="grid",
        budget={"max_trials": 4},
        search_space={
            "chains": ["pruning"],
            "grid_points": 4,
            "pruning": {"target_sparsity": {"low": 0.5, "high": 0.95}},
        },
    )
    queue = RecordingQueue()
    loop.tick(factory, queue, slots=lambda: 4)  # type: ignore[arg-type]
    with unit_of_work(factory) as s:
        specs = [runs.get_run(s, run_id=t.run_id or 0).spec for t in studies.list_trials(s, study_id=study_id)]  # type: ignore[union-attr]
    sparsities = sorted(sp["techniques"][0]["target_sparsity"] for sp in specs)
    assert sparsities == [0.5, 0.65, 0.8, 0.95]


def test_a_baseline_that_is_not_finished_is_refused_naming_the_field(factory: sessionmaker[Session]) -> None:
    from backend.core.errors import Invalid

    with unit_of_work(factory) as s:
        queued = make_run(s, name="not yet")
        with pytest.raises(Invalid) as e:
            loop.create_study(s, StudySpec(baseline_run_id=queued.id))
    assert e.value.problems[0][0] == ("body", "baseline_run_id")


def test_grid_asked_one_trial_a_tick_still_visits_each_point_once(factory: sessionmaker[Session]) -> None:
    """The sampler is rebuilt on every tick; GridSampler gives trial k the k-th point of a grid
    it shuffles with its seed, so a seed that changed with the trial count drew points twice."""
    study_id = _study(
        factory,
        strategy="grid",
        budget={"max_trials": 5},  # one more than the grid: asking past it must not break the tick
        min_trials=5,
        search_space={
            "chains": ["pruning"],
            "grid_points": 4,
            "pruning": {"target_sparsity": {"low": 0.5, "high": 0.95}},
        },
    )
    queue = RecordingQueue()
    for _ in range(5):
        assert loop.tick(factory, queue, slots=lambda: 1) == 1  # type: ignore[arg-type]
        _finish(factory, queue.sent[-1], accuracy=0.945, gzip=4_000)
    with unit_of_work(factory) as s:
        specs = [runs.get_run(s, run_id=t.run_id or 0).spec for t in studies.list_trials(s, study_id=study_id)]  # type: ignore[union-attr]
    sparsities = [sp["techniques"][0]["target_sparsity"] for sp in specs]
    assert sorted(sparsities[:4]) == [0.5, 0.65, 0.8, 0.95] and sparsities[4] in sparsities[:4]
