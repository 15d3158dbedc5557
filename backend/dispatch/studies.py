"""The study loop (issue 20): Optuna's samplers driven ask-and-tell, trials as ordinary runs.

Each tick, per active study, in one transaction holding the study's row lock:
1. tell: every running trial whose run has ended is told once (values from its variant, the
   constraint value bar − metric; a run stopped by the pruning rule is told `pruned`);
2. prune: running trials that can no longer reach the bar are cancelled (study_rules);
3. stop: the study finishes when its budget is spent (and nothing is in flight) or when the
   hypervolume has stopped improving (study_rules.should_stop, never before min_trials);
4. ask: the sampler is rebuilt in memory from the study_trials rows (the database is the only
   source of truth: told trials with their values and constraints, in-flight ones as running)
   and asked for as many trials as there are free worker slots; each becomes a queued run
   created in the same transaction as its trial row, and is sent after the commit.
A tick is idempotent: a trial is told only while its row is `running` (one conditional
UPDATE), trial numbers are unique per study (primary key and runs' unique constraint), and
the row lock makes two API processes take turns. The API never imports TensorFlow here.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from backend.core.errors import Conflict, Invalid, NotFound, Problem
from backend.dispatch import study_rules
from backend.dispatch.queue import JobQueue
from backend.dispatch.submission import (
    commit_and_enqueue,
    create_checked,
    reference_problems,
    uploaded_model_problems,
)
from backend.store import models as m
from backend.store import runs, studies, variants
from backend.store.db import unit_of_work
from backend.store.records import RunRecord
from backend.store.studies import StudyRecord, TrialRecord
from runspec.spec import RunSpec
from runspec.studies import (
    Budget,
    FloatRange,
    IntRange,
    SearchSpace,
    StudySpec,
    baseline_spec,
    chain_techniques,
    direction,
    nsga2_population,
    trial_spec,
)
from runspec.vocabulary import REFERENCE_FORMATS

log = logging.getLogger(__name__)
optuna.logging.set_verbosity(optuna.logging.WARNING)

# The variant figures a study reads (objectives, constraint, the reference).
FIGURES = ("accuracy", "f1", "size_bytes", "gzip_bytes", "params", "nonzero_params", "latency_p50_ms", "latency_p90_ms")
CONSTRAINT_KEY = "bar"
Clock = Callable[[], datetime]


# --- the search space as Optuna distributions ------------------------------------------------


def _range_distribution(r: FloatRange | IntRange) -> BaseDistribution:
    if isinstance(r, IntRange):
        return IntDistribution(r.low, r.high, log=r.log)
    return FloatDistribution(r.low, r.high, log=r.log)


def _mid(r: FloatRange | IntRange) -> float | int:
    values = r.grid(3)
    return values[len(values) // 2]


MAIN_SETTING = {"pruning": "target_sparsity", "clustering": "number_of_clusters", "distillation": "width_multiplier"}


def grid_recipes(space: SearchSpace) -> list[dict[str, Any]]:
    """Every distinct recipe of the grid strategy: chain × export × `grid_points` values of each
    technique's main setting (sparsity, clusters, student width); other settings at their
    range's middle. Enumerated once so no two grid points give the same recipe."""
    out: list[dict[str, Any]] = []
    for chain in space.chains:
        for export in space.exports:
            partial: list[dict[str, Any]] = [{"chain": chain, "export": export}]
            for tech in chain_techniques(chain):
                tech_space = getattr(space, tech)
                fixed = {
                    f"{tech}.{k}": _mid(getattr(tech_space, k))
                    for k in type(tech_space).model_fields
                    if k != MAIN_SETTING.get(tech)
                }
                main = MAIN_SETTING.get(tech)
                choices = getattr(tech_space, main).grid(space.grid_points) if main else [None]
                partial = [{**p, **fixed, **({f"{tech}.{main}": v} if main else {})} for p in partial for v in choices]
            out.extend(partial)
    return out


def distribution(name: str, space: SearchSpace, strategy: str) -> BaseDistribution:
    """The Optuna distribution of parameter `name` in this search space."""
    if strategy == "grid":
        return CategoricalDistribution(list(range(len(grid_recipes(space)))))
    if name == "chain":
        return CategoricalDistribution(list(space.chains))
    if name == "export":
        return CategoricalDistribution(list(space.exports))
    tech, _, key = name.partition(".")
    return _range_distribution(getattr(getattr(space, tech), key))


def _suggest(trial: optuna.Trial, name: str, dist: BaseDistribution) -> Any:
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)  # type: ignore[arg-type]
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, log=dist.log)
    assert isinstance(dist, FloatDistribution)
    return trial.suggest_float(name, dist.low, dist.high, log=dist.log)


def suggest_recipe(trial: optuna.Trial, space: SearchSpace, strategy: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(Optuna params, recipe) of one asked trial, define-by-run: the chain first, then only
    the settings of the techniques it uses. For grid, one categorical `grid_point`."""
    if strategy == "grid":
        recipes = grid_recipes(space)
        point = _suggest(trial, "grid_point", distribution("grid_point", space, strategy))
        return {"grid_point": point}, dict(recipes[int(point)])
    chain = _suggest(trial, "chain", distribution("chain", space, strategy))
    recipe: dict[str, Any] = {
        "chain": chain,
        "export": _suggest(trial, "export", distribution("export", space, strategy)),
    }
    for tech in chain_techniques(chain):
        for key in type(getattr(space, tech)).model_fields:
            name = f"{tech}.{key}"
            recipe[name] = _suggest(trial, name, distribution(name, space, strategy))
    return dict(trial.params), recipe


def recipe_of(params: dict[str, Any], space: SearchSpace, strategy: str) -> dict[str, Any]:
    """The recipe stored Optuna params stand for."""
    if strategy == "grid":
        return dict(grid_recipes(space)[int(params["grid_point"])])
    return dict(params)


# --- the sampler, rebuilt from the database --------------------------------------------------


def make_sampler(spec: StudySpec, *, n_trials: int) -> optuna.samplers.BaseSampler:
    """Optuna's sampler for the strategy, seeded from the study's seed and how many trials
    exist, so a rebuild after a restart draws what the lost process would have drawn and two
    ticks never draw the same random numbers. NSGA-II's population is a quarter of the trial
    budget (4–50, runspec.studies.nsga2_population): Optuna's default of 50 would make a
    30-trial study pure random search."""
    # SeedSequence mixes (study seed, trial count) into independent streams; a linear mix of
    # the two gave nearby seeds whose first draws were nearly equal (numpy's SeedSequence docs)
    seed = int(np.random.SeedSequence([spec.seed, n_trials]).generate_state(1)[0]) % 2**31
    max_trials = spec.budget.max_trials or 100
    if spec.strategy == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=nsga2_population(spec.budget.max_trials))
    if spec.strategy == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed, multivariate=True, group=True, n_startup_trials=max(2, min(10, max_trials // 3))
        )
    if spec.strategy == "grid":
        # GridSampler shuffles its grid with its seed and gives trial k the k-th point: a seed
        # that changed with the trial count re-shuffled on every rebuild and drew the same point
        # twice (a 3-point grid ran pruning+qat twice and never clustering); the study seed keeps
        # one order for the whole study
        return optuna.samplers.GridSampler(
            {"grid_point": list(range(len(grid_recipes(spec.search_space))))}, seed=spec.seed
        )
    return optuna.samplers.RandomSampler(seed=seed)


def rebuild(spec: StudySpec, trials: list[TrialRecord]) -> optuna.Study:
    """An in-memory Optuna study holding every recorded trial: complete ones with their values
    and constraint, pruned and failed ones as such, in-flight ones as running (so samplers that
    look at running trials, like TPE's constant liar, do not re-propose them)."""
    study = optuna.create_study(
        directions=[direction(o) for o in spec.objectives], sampler=make_sampler(spec, n_trials=len(trials))
    )
    space = spec.search_space
    for t in trials:
        dists = {name: distribution(name, space, spec.strategy) for name in t.params}
        common: dict[str, Any] = {"params": t.params, "distributions": dists, "system_attrs": t.sampler_attrs}
        if t.state == "complete" and t.values is not None and all(math.isfinite(v) for v in t.values):
            constraints = {CONSTRAINT_KEY: t.constraint_value} if t.constraint_value is not None else None
            frozen = optuna.trial.create_trial(values=t.values, constraints=constraints, **common)
        elif t.state == "running":
            frozen = optuna.trial.create_trial(state=TrialState.RUNNING, **common)
        elif t.state == "pruned":
            frozen = optuna.trial.create_trial(state=TrialState.PRUNED, **common)
        else:
            frozen = optuna.trial.create_trial(state=TrialState.FAIL, **common)
        study.add_trial(frozen)
    return study


# --- reading a trial's outcome ----------------------------------------------------------------


def _figures(v: Any) -> dict[str, Any]:
    return {"format": v.format, **{k: getattr(v, k) for k in FIGURES}}


def reference_figures(session: Session, *, run_id: int) -> dict[str, Any] | None:
    """The baseline variant's figures: its float32 .tflite (else its Keras model, else an
    uploaded model as it came: REFERENCE_FORMATS), or None if it has none."""
    by_format = {v.format: v for v in variants.list_variants(session, run_ids=[run_id])}
    for fmt in ("tflite-float32", *REFERENCE_FORMATS):
        if fmt in by_format and by_format[fmt].accuracy is not None:
            return _figures(by_format[fmt])
    return None


def trial_point(spec: StudySpec, reference: dict[str, Any], trial: TrialRecord) -> tuple[float, float] | None:
    """The hypervolume point of a complete, feasible trial, else None:
    (log10(baseline cost ÷ cost), metric − bar), i.e. decades of compression of the cost
    objective against the baseline's reference figure (bytes, gzip bytes, parameters or ms) and
    the constraint metric's margin over the bar (a fraction); study_rules states why."""
    if trial.state != "complete" or trial.values is None or not trial.feasible:
        return None
    cost = trial.values[list[str](spec.objectives).index(spec.cost_objective)]
    base = reference.get(spec.cost_objective)
    metric = (
        trial.values[spec.objectives.index(spec.constraint.metric)]
        if spec.constraint.metric in spec.objectives
        else None
    )
    if metric is None:
        metric = bar_of(spec, reference) - (trial.constraint_value or 0.0)
    if not base or not cost or float(cost) <= 0:
        return None
    return math.log10(float(base) / float(cost)), float(metric) - bar_of(spec, reference)


def bar_of(spec: StudySpec, reference: dict[str, Any]) -> float:
    """The constraint's bar: the baseline's metric minus the allowed drop."""
    return spec.constraint.bar(float(reference[spec.constraint.metric]))


def _outcome(
    session: Session, spec: StudySpec, reference: dict[str, Any], trial: TrialRecord
) -> tuple[str, list[float] | None, float | None, str | None]:
    """(state, values, constraint value, reason) of a trial whose run has ended. A run the
    pruning rule cancelled after its model was already measured (the cancel came too late) is
    told complete with those figures: nothing it measured is thrown away."""
    if trial.run_status == "cancelled" and trial.pruned_reason:
        measured = _outcome(session, spec, reference, replace(trial, run_status="succeeded"))
        return measured if measured[0] == "complete" else ("pruned", None, None, trial.pruned_reason)
    if trial.run_status == "succeeded":
        fmt = f"tflite-{trial.params.get('export') or recipe_of(trial.params, spec.search_space, spec.strategy)['export']}"
        found = [v for v in variants.list_variants(session, run_ids=[trial.run_id or 0]) if v.format == fmt]
        if not found:
            return "failed", None, None, f"the run produced no {fmt} variant"
        figures = _figures(found[0])
        missing = [o for o in (*spec.objectives, spec.constraint.metric) if figures.get(o) is None]
        if missing:
            return "failed", None, None, f"the {fmt} variant has no {', '.join(missing)}"
        values = [float(figures[o]) for o in spec.objectives]
        return "complete", values, bar_of(spec, reference) - float(figures[spec.constraint.metric]), None
    return "failed", None, None, trial.run_error or f"the run ended {trial.run_status}"


def worker_seconds(trial: TrialRecord, now: datetime) -> float:
    """Seconds the trial's run has held a worker (start to end, or to `now` while running)."""
    if trial.run_started_at is None:
        return trial.worker_seconds or 0.0
    end = trial.run_finished_at or now
    return max(0.0, (end - trial.run_started_at).total_seconds())


# --- budget ------------------------------------------------------------------------------


def budget_used(study: StudyRecord, trials: list[TrialRecord], now: datetime) -> dict[str, float]:
    """{trials, wall_seconds, worker_minutes} spent so far."""
    wall = (now - study.started_at).total_seconds() if study.started_at else 0.0
    if study.finished_at and study.started_at:
        wall = (study.finished_at - study.started_at).total_seconds()
    return {
        "trials": float(len(trials)),
        "wall_seconds": wall,
        "worker_minutes": sum(worker_seconds(t, now) for t in trials) / 60.0,
    }


def budget_left(budget: Budget, used: dict[str, float]) -> dict[str, float | None]:
    """What is left of each limit (None: no limit of that kind)."""
    return {
        "trials": None if budget.max_trials is None else max(0.0, budget.max_trials - used["trials"]),
        "wall_seconds": None if budget.wall_seconds is None else max(0.0, budget.wall_seconds - used["wall_seconds"]),
        "worker_minutes": None
        if budget.worker_minutes is None
        else max(0.0, budget.worker_minutes - used["worker_minutes"]),
    }


def _spent(left: dict[str, float | None]) -> str | None:
    for key, value in left.items():
        if value is not None and value <= 0:
            return {"trials": "trial budget spent", "wall_seconds": "wall-time budget spent"}.get(
                key, "worker-minutes budget spent"
            )
    return None


# --- the tick -----------------------------------------------------------------------------------


def _tell_ended(
    session: Session, study: StudyRecord, spec: StudySpec, trials: list[TrialRecord], now: datetime
) -> None:
    for t in trials:
        if t.state != "running" or t.run_status not in ("succeeded", "failed", "cancelled"):
            continue
        state, values, constraint, reason = _outcome(session, spec, study.reference, t)
        studies.tell_trial(
            session,
            study_id=study.id,
            number=t.number,
            state=state,
            values=values,
            constraint_value=constraint,
            pruned_reason=reason,
            worker_seconds=worker_seconds(t, now),
        )


def _prune_hopeless(session: Session, study: StudyRecord, spec: StudySpec, trials: list[TrialRecord]) -> list[int]:
    rule = spec.early_stopping
    if not rule.prune_trials:
        return []
    candidates = [t for t in trials if t.state == "running" and t.run_status == "running" and not t.pruned_reason]
    curves = studies.val_accuracy_curves(session, run_ids=[t.run_id for t in candidates if t.run_id])
    bar = bar_of(spec, study.reference)
    pruned = []
    for t in candidates:
        curve = curves.get(t.run_id or 0) or []
        why = study_rules.cannot_reach(
            curve, progress=t.run_progress or 0.0, bar=bar, margin=rule.prune_margin, min_epochs=rule.min_epochs
        )
        if why and t.run_id is not None:
            studies.mark_pruning(session, study_id=study.id, number=t.number, reason=why)
            runs.request_cancel(session, run_id=t.run_id)
            pruned.append(t.number)
    return pruned


def hv_history(spec: StudySpec, reference: dict[str, Any], trials: list[TrialRecord]) -> list[float]:
    """Hypervolume after each told trial, in the order they were told."""
    told = sorted((t for t in trials if t.state != "running"), key=lambda t: (t.told_at or t.created_at, t.number))
    return study_rules.hypervolume_history([trial_point(spec, reference, t) for t in told])


def tick_study(
    factory: sessionmaker[Session],
    queue: JobQueue,
    *,
    study_id: int,
    worker_slots: int,
    max_attempts: int,
    clock: Clock,
) -> int:
    """One tick of one study (module docstring); returns how many trials it asked for."""
    try:
        return _tick_study(
            factory, queue, study_id=study_id, worker_slots=worker_slots, max_attempts=max_attempts, clock=clock
        )
    except IntegrityError:  # another process recorded these trial numbers first: it asked, we did not
        log.warning("study %s: trial numbers taken by another process; asking again next tick", study_id)
        return 0


def _tick_study(
    factory: sessionmaker[Session],
    queue: JobQueue,
    *,
    study_id: int,
    worker_slots: int,
    max_attempts: int,
    clock: Clock,
) -> int:
    created: list[RunRecord] = []
    not_trials: list[RunRecord] = []  # the trials' controls
    with unit_of_work(factory) as session:
        study = studies.get_study(session, study_id=study_id, lock=True)
        if study is None or study.status not in studies.ACTIVE_STATUSES:
            return 0
        spec = study.study_spec()
        if study.waiting_for_baseline:
            if not baseline_ready(session, study, spec):
                return 0
            reread = studies.get_study(session, study_id=study_id)
            assert reread is not None
            study = reread
        now = clock()
        _tell_ended(session, study, spec, studies.list_trials(session, study_id=study_id), now)
        trials = studies.list_trials(session, study_id=study_id)
        _prune_hopeless(session, study, spec, trials)
        in_flight = [t for t in trials if t.state == "running"]
        used = budget_used(study, trials, now)
        left = budget_left(spec.budget, used)
        spent = _spent(left)
        history = hv_history(spec, study.reference, trials)
        rule = spec.early_stopping
        converged = rule.stop_study and study_rules.should_stop(
            history, min_trials=spec.stop_min_trials, patience=spec.stop_patience, min_improvement=rule.min_improvement
        )
        if spent or converged:
            reason = spent or (
                f"hypervolume improved by ≤ {rule.min_improvement:.0%} over the last {spec.stop_patience} trials"
            )
            if not in_flight:
                studies.set_status(
                    session, study_id=study_id, status="finished", only_from=["running", "queued"], stop_reason=reason
                )
            return 0
        # Counted under the lock, so a second process sees the runs the first one created.
        free_slots = worker_slots - studies.count_busy_runs(session)
        if study.status == "paused" or free_slots <= 0:
            return 0
        n = free_slots if left["trials"] is None else min(free_slots, int(left["trials"] or 0))
        if n <= 0:
            return 0
        if study.status == "queued":
            studies.set_status(session, study_id=study_id, status="running", only_from=["queued"])
        baseline_run = runs.get_run(session, run_id=study.baseline_run_id)
        if baseline_run is None:
            studies.set_status(
                session,
                study_id=study_id,
                status="stopped",
                only_from=studies.ACTIVE_STATUSES,
                stop_reason=f"baseline run {study.baseline_run_id} was deleted",
            )
            return 0
        baseline = RunSpec.model_validate(baseline_run.spec)
        sampler_study = rebuild(spec, trials)
        number = studies.next_trial_number(session, study_id=study_id)
        for _ in range(n):
            asked = sampler_study.ask()
            params, recipe = suggest_recipe(asked, spec.search_space, spec.strategy)
            attrs = _json_attrs(sampler_study, asked.number)
            try:
                run_spec = trial_spec(
                    spec,
                    study_id=study_id,
                    number=number,
                    baseline=baseline,
                    recipe=recipe,
                    baseline_run_id=study.baseline_run_id,
                )
                # a trial's same-budget control (a study spec with `control`) runs too, but is no trial
                run, *controls = create_checked(session, run_spec, max_attempts=max_attempts)
            except (ValueError, Invalid) as e:  # a recipe the spec rules refuse: a failed trial, no run
                studies.add_trial(
                    session,
                    study_id=study_id,
                    number=number,
                    params=params,
                    run_id=None,
                    sampler_attrs=attrs,
                    state="failed",
                    error=str(e)[:2000],
                )
                sampler_study.tell(asked, state=TrialState.FAIL)
            else:
                studies.add_trial(
                    session, study_id=study_id, number=number, params=params, run_id=run.id, sampler_attrs=attrs
                )
                created.append(run)
                not_trials.extend(controls)
            number += 1
        commit_and_enqueue(session, queue, [*created, *not_trials])
    return len(created)


def baseline_ready(session: Session, study: StudyRecord, spec: StudySpec) -> bool:
    """For a study waiting for the baseline run it created (an uploaded model's): True once the
    run has succeeded and its reference figures are stored; False while it is queued or running;
    a run that failed, was cancelled or was deleted, or that measured no usable reference, ends
    the study `failed` with the reason (False). Called under the study's row lock."""
    run_id = study.baseline_run_id
    run = runs.get_run(session, run_id=run_id) if run_id else None
    reason: str | None = None
    if run is None:
        reason = f"the baseline run {run_id} does not exist (deleted?)"
    elif run.status in ("queued", "running"):
        return False
    elif run.status != "succeeded":
        reason = f"the baseline run {run_id} ended {run.status}" + (f": {run.error}" if run.error else "")
    else:
        reference = reference_figures(session, run_id=run_id)
        missing = [k for k in (*spec.objectives, spec.constraint.metric) if reference and reference.get(k) is None]
        if reference is None:
            reason = f"the baseline run {run_id} measured no float32 .tflite or Keras variant to compare with"
        elif missing:
            reason = f"the baseline's {reference['format']} variant has no {', '.join(missing)} measured"
        else:
            studies.set_reference(session, study_id=study.id, reference=reference)
            return True
    studies.set_status(
        session, study_id=study.id, status="failed", only_from=studies.ACTIVE_STATUSES, stop_reason=reason
    )
    log.info("study %s failed: %s", study.id, reason)
    return False


def _json_attrs(study: optuna.Study, number: int) -> dict[str, Any]:
    attrs = study.get_trials(deepcopy=False)[number].system_attrs
    out: dict[str, Any] = {}
    for k, v in attrs.items():
        if isinstance(v, str | int | float | bool) or v is None:
            out[k] = v
        elif isinstance(v, list | tuple) and all(isinstance(x, str | int | float | bool) for x in v):
            out[k] = list(v)
        elif isinstance(v, dict) and all(
            isinstance(x, list | tuple) and all(isinstance(y, str | int | float | bool) for y in x) for x in v.values()
        ):  # GridSampler's "search_space": without it, its visited-grid check raises KeyError
            out[k] = {str(name): list(x) for name, x in v.items()}
    return out


def tick(
    factory: sessionmaker[Session],
    queue: JobQueue,
    *,
    slots: Callable[[], int],
    max_attempts: int = 2,
    clock: Clock = m.utcnow,
) -> int:
    """One tick of every active study; its free slots = worker slots − busy runs (counted under
    the study's lock), shared in study order. Returns how many trials were asked for. Cheap when no study is active (one query)."""
    with unit_of_work(factory) as session:
        ids = studies.active_study_ids(session)
    if not ids:
        return 0
    total = 0
    for study_id in ids:
        try:
            total += tick_study(
                factory, queue, study_id=study_id, worker_slots=slots(), max_attempts=max_attempts, clock=clock
            )
        except Exception:
            log.exception("study %s: tick failed; retrying next tick", study_id)
    return total


# --- free workers -------------------------------------------------------------------------------


class CeleryWorkerSlots:
    """How many jobs the online training workers can run at once (sum of their pools'
    max-concurrency, as GET /api/workers reports it), asked at most every `ttl_s` seconds."""

    def __init__(self, queue: JobQueue, *, ttl_s: float = 10.0, timeout_s: float = 1.0) -> None:
        self.queue, self.ttl_s, self.timeout_s = queue, ttl_s, timeout_s
        self._value, self._at = 0, -math.inf

    def __call__(self) -> int:
        if time.monotonic() - self._at < self.ttl_s:
            return self._value
        try:
            app = self.queue.app
            online = [n for r in app.control.ping(timeout=self.timeout_s) for n in r]
            stats = app.control.inspect(destination=online, timeout=self.timeout_s).stats() if online else {}
            queues = app.control.inspect(destination=online, timeout=self.timeout_s).active_queues() if online else {}
            total = 0
            for name, st in (stats or {}).items():
                names = {q.get("name") for q in (queues or {}).get(name) or []}
                if "train" in names or not names:
                    total += int(((st or {}).get("pool") or {}).get("max-concurrency") or 0)
            self._value = total
        except Exception:
            log.warning("cannot count workers now", exc_info=True)
            self._value = 0
        self._at = time.monotonic()
        return self._value


class StudyLoop:
    """Ticks the studies every `interval_s` seconds on a thread of the API process, and at once
    when nudged (a study created, resumed or extended)."""

    def __init__(
        self, factory: sessionmaker[Session], queue: JobQueue, *, interval_s: float, max_attempts: int
    ) -> None:
        self.factory, self.queue = factory, queue
        self.interval_s, self.max_attempts = interval_s, max_attempts
        self.slots = CeleryWorkerSlots(queue)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="optiboard-studies", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def nudge(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                tick(self.factory, self.queue, slots=self.slots, max_attempts=self.max_attempts)
            except Exception:
                log.exception("study tick failed; retrying next interval")


# --- creating and steering studies (called by the API) ---------------------------------------


# Why a chain starting with distillation is not offered for an uploaded model's baseline.
NO_DISTILLATION_FROM_UPLOAD = (
    "distillation trains a narrower student of a built-in architecture, and an uploaded model has no "
    "architecture here to shrink"
)


def create_study(session: Session, spec: StudySpec) -> StudyRecord:
    """create_study_and_runs without the runs: a baseline run it created stays queued in the
    database (the dispatcher sends it; the API route sends it after its commit)."""
    return create_study_and_runs(session, spec)[0]


def create_study_and_runs(session: Session, spec: StudySpec) -> tuple[StudyRecord, list[RunRecord]]:
    """Checks the baseline and that each chain's middle recipe is a valid run spec; raises
    Invalid (422 naming the field) otherwise. Returns the queued study and the runs to send
    after the commit (the baseline run a study from an uploaded model creates; none for a
    baseline run). The loop starts the study (when its baseline run has succeeded).

    - `baseline_run_id`: a succeeded run with a Keras model and a measured reference variant;
    - `baseline_model_id`: an uploaded model that can be run on `dataset` (the checks of a run
      of it), measured by a baseline run created here in the same transaction.
    Default chains this baseline cannot take (the uploaded model's preflight says a technique
    is unsupported; distillation from an uploaded model) are left out, with why, in
    `left_out_chains`; chains the user listed are refused with a 422 naming
    `search_space.chains.N`."""
    if spec.baseline_model_id is not None:
        return _create_from_model(session, spec)
    assert spec.baseline_run_id is not None
    problems: list[Problem] = []
    loc = ("body", "baseline_run_id")
    baseline = runs.get_run(session, run_id=spec.baseline_run_id)
    if baseline is None:
        raise Invalid.at(loc, f"run {spec.baseline_run_id} does not exist")
    if baseline.status != "succeeded":
        raise Invalid.at(loc, f"run {spec.baseline_run_id} is {baseline.status}, not a finished (succeeded) run")
    reference = reference_figures(session, run_id=spec.baseline_run_id)
    if reference is None:
        raise Invalid.at(
            loc, f"run {spec.baseline_run_id} has no measured float32 .tflite or Keras variant to compare with"
        )
    for key in (*spec.objectives, spec.constraint.metric):
        if reference.get(key) is None:
            field = ("body", "objectives") if key in spec.objectives else ("body", "constraint", "metric")
            problems.append((field, f"the baseline's {reference['format']} variant has no {key} measured"))
    if problems:
        raise Invalid(problems)
    base_spec = RunSpec.model_validate(baseline.spec)
    spec, left_out = _checked_chains(session, spec, base_spec, baseline_run_id=spec.baseline_run_id)
    study = studies.create_study(
        session,
        spec=spec,
        reference=reference,
        dataset=base_spec.dataset.model_dump(mode="json"),
        left_out_chains=left_out,
    )
    return study, []


def _create_from_model(session: Session, spec: StudySpec) -> tuple[StudyRecord, list[RunRecord]]:
    """A study whose baseline is an uploaded model: the study row (reference empty: it waits),
    then its baseline run (the model measured as it came, float32 export), linked by
    `studies.baseline_run_id`. A problem of the baseline run is a 422 naming baseline_model_id
    or the dataset field."""
    base_spec = baseline_spec(spec, study_id=1)
    problems: list[Problem] = []
    for field, msg in reference_problems(session, base_spec, loc=()):
        if field[:1] == ("model",):
            problems.append((("body", "baseline_model_id"), msg))
        elif field[:1] == ("dataset",):
            problems.append((("body", *field), msg))
        else:
            problems.append((("body", "baseline_model_id"), f"{'.'.join(map(str, field))}: {msg}"))
    if problems:
        raise Invalid(problems)
    spec, left_out = _checked_chains(session, spec, base_spec, baseline_run_id=None)
    study = studies.create_study(
        session,
        spec=spec,
        reference={},
        dataset=base_spec.dataset.model_dump(mode="json"),
        baseline_run_id=0,
        left_out_chains=left_out,
    )
    created = create_checked(session, baseline_spec(spec, study_id=study.id), max_attempts=1)
    studies.set_baseline_run(session, study_id=study.id, run_id=created[0].id)
    linked = studies.get_study(session, study_id=study.id)
    assert linked is not None
    return linked, created


def _checked_chains(
    session: Session, spec: StudySpec, base_spec: RunSpec, *, baseline_run_id: int | None
) -> tuple[StudySpec, dict[str, str]]:
    """(spec, left out) after checking each chain's middle recipe like a submitted run: the
    trial's references (`reference_problems`, when the baseline run exists) and, when the
    baseline is an uploaded model's (`base_spec.model.upload_id`), the model's stored preflight
    (`uploaded_model_problems` on the same recipe run from the upload) and the rule that
    distillation needs a built-in architecture. Default chains that fail are left out (the
    returned spec lists what remains, the dict says why); listed ones raise Invalid."""
    space = spec.search_space
    upload_id = base_spec.model.upload_id
    refused: dict[str, list[Problem]] = {}
    for i, chain in enumerate(space.chains):
        loc = ("body", "search_space", "chains", i)
        if upload_id is not None and "distillation" in chain_techniques(chain):
            refused[chain] = [(loc, f"{chain}: {NO_DISTILLATION_FROM_UPLOAD}")]
            continue
        recipe: dict[str, Any] = {"chain": chain, "export": space.exports[0]}
        for tech in chain_techniques(chain):
            tech_space = getattr(space, tech)
            recipe.update({f"{tech}.{k}": _mid(getattr(tech_space, k)) for k in type(tech_space).model_fields})
        try:
            trial = trial_spec(
                spec, study_id=1, number=0, baseline=base_spec, recipe=recipe, baseline_run_id=baseline_run_id or 1
            )
        except ValueError as e:
            refused.setdefault(chain, []).append((loc, f"{chain}: {e}"))
            continue
        found: list[Problem] = []
        if baseline_run_id is not None:
            found += reference_problems(session, trial, loc=loc)
        if upload_id is not None:
            as_upload = trial.model_copy(
                update={"model": trial.model.model_copy(update={"init_from_run_id": None, "upload_id": upload_id})}
            )
            found += [p for p in uploaded_model_problems(session, as_upload, loc=loc) if p not in found]
        for _field, msg in found:
            refused.setdefault(chain, []).append((loc if upload_id is not None else _field, f"{chain}: {msg}"))
    usable = [c for c in space.chains if c not in refused]
    if refused and "chains" not in space.model_fields_set and usable:
        # the default chains: those this baseline cannot take (a distilled student no smaller than
        # a narrow baseline, a technique the uploaded model's preflight refuses) are left out, not
        # refused; the stored spec lists what remains and `left_out_chains` says why
        spec = spec.model_copy(update={"search_space": space.model_copy(update={"chains": usable})})
        return spec, {c: "; ".join(msg.partition(": ")[2] for _, msg in ps) for c, ps in refused.items()}
    problems = [p for chain_problems in refused.values() for p in chain_problems]
    if problems:
        raise Invalid(problems)
    return spec, {}


def _get(session: Session, study_id: int, *, lock: bool = True) -> StudyRecord:
    study = studies.get_study(session, study_id=study_id, lock=lock)
    if study is None:
        raise NotFound(f"study {study_id} does not exist")
    return study


def pause(session: Session, *, study_id: int) -> StudyRecord:
    """No new trials; trials in flight finish and are told."""
    study = _get(session, study_id)
    if not studies.set_status(session, study_id=study_id, status="paused", only_from=["queued", "running"]):
        raise Conflict(f"study {study_id} is {study.status}: only a queued or running study can be paused")
    return _get(session, study_id)


def resume(session: Session, *, study_id: int) -> StudyRecord:
    study = _get(session, study_id)
    target = "running" if study.started_at else "queued"
    if not studies.set_status(session, study_id=study_id, status=target, only_from=["paused"]):
        raise Conflict(f"study {study_id} is {study.status}: only a paused study can be resumed")
    return _get(session, study_id)


def stop(session: Session, *, study_id: int) -> StudyRecord:
    """Stops the study for good: no new trials, trials in flight are cancelled (their runs end
    cancelled and the trials are told failed)."""
    study = _get(session, study_id)
    if not studies.set_status(
        session, study_id=study_id, status="stopped", only_from=studies.ACTIVE_STATUSES, stop_reason="stopped by user"
    ):
        raise Conflict(f"study {study_id} is {study.status}: it has already ended")
    for t in studies.list_trials(session, study_id=study_id):
        if t.state == "running" and t.run_id is not None:
            runs.request_cancel(session, run_id=t.run_id)
    if study.waiting_for_baseline and study.spec.get("baseline_model_id") and study.baseline_run_id:
        baseline = runs.get_run(session, run_id=study.baseline_run_id)
        if baseline is not None and baseline.status in ("queued", "running"):
            runs.request_cancel(session, run_id=study.baseline_run_id)  # it was made for this study alone
    return _get(session, study_id)


def extend(
    session: Session, *, study_id: int, trials: int = 0, wall_seconds: float = 0.0, worker_minutes: float = 0.0
) -> StudyRecord:
    """Raises the budget's limits by these amounts (a limit not set stays unlimited); a study
    that finished because its budget was spent runs again. Stopped studies stay stopped."""
    study = _get(session, study_id)
    if study.status in ("stopped", "failed"):
        raise Conflict(f"study {study_id} was {study.status}: it cannot be extended")
    budget = Budget.model_validate(study.budget)
    data = budget.model_dump()
    for key, add in (("max_trials", trials), ("wall_seconds", wall_seconds), ("worker_minutes", worker_minutes)):
        if add and data[key] is not None:
            data[key] = data[key] + add
    try:
        new = Budget.model_validate(data)
    except ValueError as e:
        raise Invalid.at(("body",), str(e)) from None
    studies.set_budget(session, study_id=study_id, budget=new.model_dump(mode="json"))
    if study.status == "finished":
        studies.set_status(session, study_id=study_id, status="running", only_from=["finished"], stop_reason=None)
    return _get(session, study_id)
