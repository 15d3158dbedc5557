"""Two faults a new user found: a rebuilt sampler's first draws were nearly equal from one trial
count to the next (seeds were a linear mix), and a trial was "pruned" when it had no epoch left,
throwing away a model the worker had already measured."""

from __future__ import annotations

import optuna
import pytest

from backend.dispatch import study_rules
from backend.dispatch.studies import make_sampler
from runspec.studies import StudySpec

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize("study_seed", [0, 1, 12345])
def test_each_rebuilt_sampler_draws_independently(study_seed: int) -> None:
    spec = StudySpec.model_validate({"baseline_run_id": 1, "strategy": "random", "seed": study_seed})
    draws = []
    for n in range(12):
        study = optuna.create_study(sampler=make_sampler(spec, n_trials=n))
        draws.append(study.ask().suggest_float("target_sparsity", 0.6, 0.97))
    # 12 independent uniform draws on [0.6, 0.97]: their range covers well over half the
    # interval (the old linear seeds gave 0.715-0.85 for the first 8 at seed 0)
    assert max(draws) - min(draws) > 0.5 * (0.97 - 0.6), draws
    assert len({round(d, 3) for d in draws}) == 12


def test_a_trial_with_no_epoch_left_is_not_pruned() -> None:
    hopeless = [0.20, 0.25, 0.27]
    # 3 of 4 epochs done: one epoch left, and even the optimistic bound misses the bar
    assert study_rules.cannot_reach(hopeless, progress=0.75, bar=0.9, margin=0.01, min_epochs=2)
    # every epoch done (exporting and measuring): stopping saves nothing; let it finish
    assert study_rules.cannot_reach(hopeless, progress=0.97, bar=0.9, margin=0.01, min_epochs=2) is None
    assert study_rules.remaining_epochs(hopeless, progress=0.75) == pytest.approx(1.0)


def test_a_prune_that_came_after_the_model_was_measured_keeps_its_figures(db_url: str) -> None:
    """The worker measured the trial's int8 model, then saw the cancel: the run ends cancelled
    with a variant, and the study tells the trial complete (infeasible here) with its figures."""
    from backend.dispatch import studies as loop
    from backend.store import metrics, runs
    from backend.store.db import make_engine, make_sessionmaker, unit_of_work
    from backend.store.metrics import Point
    from tests.factories import make_variant
    from tests.studies.test_study_loop import RecordingQueue, _study, _trials

    factory = make_sessionmaker(make_engine(db_url))
    study_id = _study(factory, budget={"max_trials": 1})
    queue = RecordingQueue()
    loop.tick(factory, queue, slots=lambda: 1)  # type: ignore[arg-type]
    (trial,) = _trials(factory, study_id)
    run_id = trial.run_id or 0
    with unit_of_work(factory) as s:  # three flat epochs at 50 % with one epoch left: pruned
        lease = runs.claim_run(s, run_id=run_id, worker="w") or ""
        metrics.log_batch(s, run_id=run_id, points=[Point("val_accuracy", i * 10, 0.5, 1.0) for i in range(3)])
        runs.heartbeat(s, run_id=run_id, lease=lease, progress=0.75)
    loop.tick(factory, queue, slots=lambda: 1)  # type: ignore[arg-type]
    (asked,) = _trials(factory, study_id)
    assert "pruned-infeasible" in (asked.pruned_reason or "")  # the rule asked for the cancel
    with unit_of_work(factory) as s:  # ...but the worker had already measured its int8 model
        make_variant(s, run_id, "tflite-int8", accuracy=0.52, size_bytes=4_000)
        runs.finish_run(s, run_id=run_id, lease=lease, status="cancelled", error="cancelled by user")
    loop.tick(factory, queue, slots=lambda: 1)  # type: ignore[arg-type]
    (trial,) = _trials(factory, study_id)
    assert trial.state == "complete" and trial.feasible is False, trial
    assert trial.values is not None and 4_000 in trial.values and 0.52 in trial.values


def test_default_chains_a_narrow_baseline_cannot_take_are_left_out_not_refused(db_url: str) -> None:
    """A ×0.5 baseline: the default 0.25–0.75 student width has its middle (0.5) no smaller than
    the teacher, so the default distillation chain is dropped; asked for explicitly, it is a 422
    naming the chain."""
    from backend.core.errors import Invalid
    from backend.dispatch import studies as loop
    from backend.store import runs, studies
    from backend.store.db import make_engine, make_sessionmaker, unit_of_work
    from runspec.studies import DEFAULT_CHAINS
    from tests.factories import make_run, make_variant

    factory = make_sessionmaker(make_engine(db_url))
    with unit_of_work(factory) as s:
        run = make_run(s, name="narrow", dataset={"name": "digits"}, model={"width_multiplier": 0.5})
        lease = runs.claim_run(s, run_id=run.id, worker="w")
        make_variant(s, run.id, "keras", accuracy=0.9, size_bytes=40_000)
        make_variant(s, run.id, "tflite-float32", accuracy=0.9, size_bytes=20_000)
        runs.finish_run(s, run_id=run.id, lease=lease, status="succeeded")
    with unit_of_work(factory) as s:
        created = loop.create_study(s, StudySpec.model_validate({"baseline_run_id": run.id}))
        stored = studies.get_study(s, study_id=created.id)
    assert stored is not None
    kept = stored.spec["search_space"]["chains"]
    assert "distillation+pruning" in DEFAULT_CHAINS and "distillation+pruning" not in kept
    assert kept == [c for c in DEFAULT_CHAINS if not c.startswith("distillation")]
    explicit = {"baseline_run_id": run.id, "search_space": {"chains": ["pruning", "distillation+pruning"]}}
    with unit_of_work(factory) as s, pytest.raises(Invalid) as refused:
        loop.create_study(s, StudySpec.model_validate(explicit))
    assert refused.value.problems[0][0][:4] == ("body", "search_space", "chains", 1)
