"""The run state machine and the one metric write path, on SQLite and on PostgreSQL."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.store import metrics, models, runs, variants
from backend.store.metrics import Point
from runspec.vocabulary import logged_headline
from tests.factories import make_run, make_variant


def new_run(session: Session, **spec) -> int:  # type: ignore[no-untyped-def]
    run = make_run(session, **spec)
    session.flush()
    return run.id


def test_create_run_is_queued_with_experiment_and_hash(session: Session) -> None:
    run_id = new_run(session, experiment="exp-a", tags=["x"])
    run = runs.get_run(session, run_id=run_id)
    assert run is not None
    assert (run.status, run.experiment, run.tags, run.attempt) == ("queued", "exp-a", ["x"], 0)
    assert len(run.spec_hash) == 64 and run.spec["dataset"]["name"] == "digits"
    other = runs.get_run(session, run_id=new_run(session, experiment="exp-a"))
    assert other is not None and other.experiment_id == run.experiment_id


def test_metric_point_unique_per_run_key_step(session: Session) -> None:
    run_id = new_run(session)
    pts = [Point("loss", s, 1.0 / (s + 1)) for s in range(50)]
    metrics.log_batch(session, run_id=run_id, points=pts)
    metrics.log_batch(session, run_id=run_id, points=pts + [Point("loss", 50, 0.5)])
    assert metrics.count_points(session, run_id=run_id) == 51
    series = metrics.read_series(session, run_id=run_id)
    assert series["loss"].steps == list(range(51))
    assert series["loss"].values[3] == pytest.approx(0.25)  # the first write won
    session.add(models.MetricPoint(run_id=run_id, key="loss", step=7, value=9.0, wall_time=0.0))
    with pytest.raises(IntegrityError):
        session.flush()


def test_non_finite_values_round_trip(session: Session) -> None:
    run_id = new_run(session)
    metrics.log_batch(
        session,
        run_id=run_id,
        points=[
            Point("loss", 0, math.nan),
            Point("loss", 1, math.inf),
            Point("loss", 2, -math.inf),
            Point("loss", 3, 1.5),
        ],
    )
    values = metrics.read_series(session, run_id=run_id)["loss"].values
    assert math.isnan(values[0]) and values[1] == math.inf and values[2] == -math.inf and values[3] == 1.5


def test_downsampling_bounds_points_and_keeps_spikes(session: Session) -> None:
    run_id = new_run(session)
    pts = [Point("loss", s, 1.0) for s in range(10_000)]
    pts[4321] = Point("loss", 4321, 100.0)
    pts[8765] = Point("loss", 8765, -5.0)
    metrics.log_batch(session, run_id=run_id, points=pts)
    s = metrics.read_series(session, run_id=run_id, max_points=200)["loss"]
    assert len(s.steps) <= 200
    assert s.steps == sorted(s.steps)
    assert (4321, 100.0) in zip(s.steps, s.values, strict=True)
    assert (8765, -5.0) in zip(s.steps, s.values, strict=True)
    assert s.steps[0] == 0 and s.steps[-1] == 9999
    after = metrics.read_series(session, run_id=run_id, after_step=9990, max_points=200)["loss"]
    assert after.steps == list(range(9991, 10_000))


def test_claim_is_exclusive_and_new_attempt_starts_clean(session: Session) -> None:
    run_id = new_run(session)
    lease = runs.claim_run(session, run_id=run_id, worker="w1")
    assert lease is not None
    assert runs.claim_run(session, run_id=run_id, worker="w2") is None  # duplicate delivery
    metrics.log_batch(session, run_id=run_id, points=[Point("loss", 1, 1.0)])
    assert runs.heartbeat(session, run_id=run_id, lease=lease, progress=0.5) == "ok"
    assert runs.heartbeat(session, run_id=run_id, lease="not-the-lease") == "lost"
    # The worker goes silent: the reaper requeues (attempt 1 of 2) ...
    later = models.utcnow() + timedelta(seconds=100)
    reaped = runs.reap_stale(session, timeout_s=10, now=later)
    assert reaped.requeued == [run_id] and reaped.failed == []
    assert runs.heartbeat(session, run_id=run_id, lease=lease) == "lost"  # the zombie must stop
    lease2 = runs.claim_run(session, run_id=run_id, worker="w2")
    assert lease2 is not None and lease2 != lease
    assert metrics.count_points(session, run_id=run_id) == 0  # no mix of attempts
    run = runs.get_run(session, run_id=run_id)
    assert run is not None and run.attempt == 2
    # ... and at the cap it fails with the reason shown.
    reaped = runs.reap_stale(session, timeout_s=10, now=models.utcnow() + timedelta(seconds=100))
    assert reaped.failed == [run_id]
    run = runs.get_run(session, run_id=run_id)
    assert run is not None and run.status == "failed" and "attempt 2 of 2" in (run.error or "")


def test_terminal_states_never_change(session: Session) -> None:
    run_id = new_run(session)
    lease = runs.claim_run(session, run_id=run_id, worker="w")
    cancelled = runs.request_cancel(session, run_id=run_id)
    assert cancelled is not None and cancelled.status == "running" and cancelled.cancel_requested
    assert runs.heartbeat(session, run_id=run_id, lease=lease or "") == "cancel"
    assert runs.finish_run(session, run_id=run_id, lease=lease, status="cancelled")
    # A late "succeeded" from the same attempt is refused.
    assert not runs.finish_run(session, run_id=run_id, lease=lease, status="succeeded")
    run = runs.get_run(session, run_id=run_id)
    assert run is not None and run.status == "cancelled"
    queued = new_run(session)
    after = runs.request_cancel(session, run_id=queued)
    assert after is not None and after.status == "cancelled"
    assert runs.claim_run(session, run_id=queued, worker="w") is None


def test_list_runs_filters_and_headline(session: Session) -> None:
    a = new_run(session, name="alpha", experiment="e1", tags=["best"])
    new_run(session, name="beta", experiment="e2")
    variants.add_variant(
        session,
        run_id=a,
        fields=dict(
            format="tflite-float32",
            artifact_path="runs/1/x.tflite",
            accuracy=0.9,
            precision=0.9,
            recall=0.9,
            f1=0.9,
            confusion=[[1]],
            size_bytes=1000,
            gzip_bytes=900,
            params=10,
            nonzero_params=10,
            latency_p50_ms=0.1,
            latency_p95_ms=0.2,
            throughput_per_s=1.0,
            hardware={},
            extra={},
        ),
    )
    page, count = runs.list_runs(session, filters=runs.RunFilter(experiment="e1"))
    assert count == 1 and page[0].name == "alpha"
    assert page[0].headline == {
        "format": "tflite-float32",
        "accuracy": 0.9,
        "size_bytes": 1000,
        "gzip_bytes": 900,
        "latency_p50_ms": 0.1,
        "latency_p90_ms": None,
        "latency_unstable": None,
    }
    assert runs.list_runs(session, filters=runs.RunFilter(tag="best"))[1] == 1
    assert runs.list_runs(session, filters=runs.RunFilter(q="BET"))[1] == 1
    assert [r.name for r in runs.list_runs(session, sort="name")[0]] == ["alpha", "beta"]


def _variant(session: Session, run_id: int, fmt: str, acc: float | None, size: int) -> None:
    make_variant(session, run_id, fmt, accuracy=acc, size_bytes=size)


def test_sort_by_headline_metrics_and_optimize_runs_have_a_headline(session: Session) -> None:
    a, b, c = new_run(session, name="a"), new_run(session, name="b"), new_run(session, name="none")
    _variant(session, a, "keras", 0.95, 5000)
    _variant(session, a, "tflite-float32", 0.8, 3000)  # speaks for run a (keras only when nothing else)
    _variant(session, b, "tflite-int8", 0.9, 1000)  # an optimize-like run: only int8
    by_acc = [r.name for r in runs.list_runs(session, sort="-accuracy")[0]]
    assert by_acc == ["b", "a", "none"]  # runs without variants last either way
    assert [r.name for r in runs.list_runs(session, sort="size_bytes")[0]] == ["b", "a", "none"]
    head_b = runs.get_run(session, run_id=b)
    assert head_b is not None and head_b.headline == {
        "format": "tflite-int8",
        "accuracy": 0.9,
        "size_bytes": 1000,
        "gzip_bytes": 1000,
        "latency_p50_ms": 1.0,
        "latency_p90_ms": None,
        "latency_unstable": None,
    }
    assert runs.list_runs(session, sort="-duration")[1] == 3
    del c


def test_an_ended_run_keeps_its_final_metrics_and_an_external_one_sorts_by_them(session: Session) -> None:
    def ended(name: str, external: bool, series: dict[str, list[float]]) -> int:
        run = make_run(session, name=name, external=external)
        lease = None if external else runs.claim_run(session, run_id=run.id, worker="w")  # a new attempt starts clean
        assert external or lease is not None
        for key, values in series.items():
            metrics.log_batch(session, run_id=run.id, points=[Point(key, i * 3000, v) for i, v in enumerate(values)])
        assert runs.finish_run(session, run_id=run.id, lease=lease, status="succeeded")
        return run.id

    # steps 0, 3000, 6000: the last value crosses top-level blocks (4096 steps wide)
    ext = ended("ext", True, {"val_accuracy": [0.2, 0.9, 0.6], "loss": [1.0, math.nan, -math.inf]})
    ended("low", True, {"accuracy": [0.3]})
    # a last value that is no number is skipped, as logged_headline skips it: this run is headlined
    # (and sorted) by its training accuracy, not by the stored "Infinity" (SQLite casts it to 0.0)
    inf = ended("inf", True, {"val_accuracy": [0.5, math.inf], "accuracy": [0.99]})
    trained = ended("trained", False, {"val_accuracy": [0.99]})
    _variant(session, trained, "tflite-int8", 0.5, 1000)
    record = runs.get_run(session, run_id=ext)
    assert record is not None and record.final_metrics == {"val_accuracy": 0.6, "loss": "-Infinity"}
    assert runs.get_run(session, run_id=trained).final_metrics == {"val_accuracy": 0.99}  # type: ignore[union-attr]
    # An external run without a variant sorts by its final logged accuracy; a worker run by its
    # headline variant (int8 0.5), never by its logged value (0.99).
    assert (logged_headline(runs.get_run(session, run_id=inf).final_metrics) or {})["accuracy"] == 0.99  # type: ignore[union-attr]
    assert [r.name for r in runs.list_runs(session, sort="-accuracy")[0]] == ["inf", "ext", "trained", "low"]
    assert [r.name for r in runs.list_runs(session, sort="accuracy")[0]] == ["low", "trained", "ext", "inf"]
    # with no number under any accuracy key, the run has no headline and sorts last both ways
    ended("none", True, {"val_accuracy": [math.inf], "accuracy": [-math.inf]})
    assert runs.list_runs(session, sort="-accuracy")[0][-1].name == "none"
    assert runs.list_runs(session, sort="accuracy")[0][-1].name == "none"


@pytest.mark.parametrize(
    ("formats", "expected"),
    [
        (["keras", "tflite-float32", "tflite-int8"], "tflite-int8"),  # prune80-int8: the int8 model
        (["keras", "tflite-int8"], "tflite-int8"),  # an int8-only run: not the Keras file
        (["keras", "tflite-float32", "tflite-dynamic", "tflite-float16"], "tflite-float16"),
        (["keras", "tflite-dynamic", "tflite-float32"], "tflite-dynamic"),
        (["tflite-float32", "keras"], "tflite-float32"),
        (["keras"], "keras"),  # only when nothing else exists
    ],
)
def test_the_headline_is_the_deployable_variant(session: Session, formats: list[str], expected: str) -> None:
    run = new_run(session, name="chain")
    for i, fmt in enumerate(formats):
        _variant(session, run, fmt, 0.5 + i / 100, 1000 * (i + 1))
    record = runs.get_run(session, run_id=run)
    assert record is not None and record.headline is not None
    assert record.headline["format"] == expected
    listed = runs.list_runs(session, filters=runs.RunFilter(q="chain"))[0]
    assert listed[0].headline == record.headline
    # sorting by a headline figure uses the same variant
    i = formats.index(expected)
    assert runs.list_runs(session, sort="accuracy")[0][0].headline["accuracy"] == pytest.approx(0.5 + i / 100)  # type: ignore[index]


def test_wall_time_anchors_are_thinned_by_rank_and_keep_both_ends(session: Session) -> None:
    run_id = new_run(session, name="timed")
    metrics.log_batch(session, run_id=run_id, points=[("loss", s, 1.0, 1000.0 + 2 * s) for s in range(0, 1000, 3)])
    metrics.log_batch(session, run_id=run_id, points=[("val_loss", 5, 1.0, 7.0)])
    steps, wall = metrics.read_wall_times(session, run_id=run_id, key="loss", max_points=50)
    assert 2 <= len(steps) <= 50 and steps[0] == 0 and steps[-1] == 999
    assert steps == sorted(steps) and wall == [1000.0 + 2 * s for s in steps]  # each step's own time
    assert metrics.read_wall_times(session, run_id=run_id, key="val_loss") == ([5], [7.0])
    assert metrics.read_wall_times(session, run_id=run_id, key="nothing") == ([], [])
