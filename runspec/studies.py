"""A study: a budgeted multi-objective search over whole recipes, started from a baseline run
(issue 20). Data only, like the run spec: what the user asks for and how one sampled recipe
becomes an ordinary RunSpec. The sampler (Optuna) lives in backend/dispatch/studies.py.

Units: accuracy and F1 are fractions 0–1 on the test split (a "point" is 0.01); sizes are bytes,
latencies milliseconds, budgets seconds and worker-minutes.
"""

from __future__ import annotations

import math
from typing import Any, Literal, get_args

from pydantic import Field, model_validator

from runspec.spec import (
    WIDTH_ARCHITECTURES,
    ClusteringSpec,
    DatasetSpec,
    DistillationSpec,
    MeasurementSpec,
    Name,
    PruningSpec,
    QATSpec,
    RunSpec,
    SpecError,
    Strict,
)
from runspec.vocabulary import MAX_ID, ExportFormat

# Objectives: the variant's column and its direction. Costs are minimised, quality maximised.
COST_OBJECTIVES: tuple[str, ...] = (
    "size_bytes",
    "gzip_bytes",
    "params",
    "nonzero_params",
    "latency_p50_ms",
    "latency_p90_ms",
)
QUALITY_OBJECTIVES: tuple[str, ...] = ("accuracy", "f1")
Objective = Literal[
    "size_bytes", "gzip_bytes", "params", "nonzero_params", "latency_p50_ms", "latency_p90_ms", "accuracy", "f1"
]
STRATEGIES: tuple[str, ...] = ("nsga2", "tpe", "random", "grid")
# A trial's outcome as the study sees it (its run's status says how the job ended).
TRIAL_STATES: tuple[str, ...] = ("running", "complete", "pruned", "failed")

# Technique chains a recipe may use: technique names joined by "+", in the order they run;
# "none" is post-training quantization of the baseline alone (its export format).
Chain = Literal[
    "none",
    "pruning",
    "clustering",
    "qat",
    "pruning+qat",
    "clustering+qat",
    "pruning+clustering",
    "distillation",
    "distillation+pruning",
    "distillation+qat",
]
CHAINS: tuple[str, ...] = get_args(Chain)
DEFAULT_CHAINS: tuple[str, ...] = (
    "pruning",
    "clustering",
    "pruning+qat",
    "clustering+qat",
    "pruning+clustering",
    "distillation+pruning",
)


def direction(objective: str) -> Literal["minimize", "maximize"]:
    """'maximize' for accuracy and f1, 'minimize' for the cost figures."""
    return "maximize" if objective in QUALITY_OBJECTIVES else "minimize"


class FloatRange(Strict):
    """A real-valued dimension: `low`..`high`, on a log scale when `log` (learning rates)."""

    low: float = Field(ge=0.0, le=1e6)
    high: float = Field(ge=0.0, le=1e6)
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> FloatRange:
        if self.high < self.low:
            raise SpecError("high", "high must not be below low")
        if self.log and self.low <= 0:
            raise SpecError("low", "a log-scale range needs low > 0")
        return self

    def grid(self, points: int) -> list[float]:
        """`points` values spread evenly (geometrically when `log`) from low to high."""
        if points == 1 or self.low == self.high:
            return [self.low]
        if self.log:
            a, b = math.log(self.low), math.log(self.high)
            return [float(f"{math.exp(a + (b - a) * i / (points - 1)):.3g}") for i in range(points)]
        return [float(f"{self.low + (self.high - self.low) * i / (points - 1):.4g}") for i in range(points)]


class IntRange(Strict):
    """An integer dimension `low`..`high` (epochs, clusters; clusters on a log scale)."""

    low: int = Field(ge=1, le=65536)
    high: int = Field(ge=1, le=65536)
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        if self.high < self.low:
            raise SpecError("high", "high must not be below low")
        return self

    def grid(self, points: int) -> list[int]:
        if points == 1 or self.low == self.high:
            return [self.low]
        if self.log:
            a, b = math.log(self.low), math.log(self.high)
            values = [round(math.exp(a + (b - a) * i / (points - 1))) for i in range(points)]
        else:
            values = [round(self.low + (self.high - self.low) * i / (points - 1)) for i in range(points)]
        return sorted(set(values))


class PruningSpace(Strict):
    """Defaults reach high sparsities: with int8 export the zeros are what gzip compresses, and
    a gzip-size objective is won above 85 % sparsity (docs/results.md, "Studies"). Fine-tuning
    takes at least 2 epochs: a Fashion-MNIST trial pruned to 88 % in one epoch ended 10 points
    under the bar, so one-epoch pruning trials were spent budget at the sparsities that matter."""

    target_sparsity: FloatRange = FloatRange(low=0.6, high=0.97)
    epochs: IntRange = IntRange(low=2, high=4)
    learning_rate: FloatRange = FloatRange(low=1e-4, high=3e-3, log=True)


class ClusteringSpace(Strict):
    """Few clusters (log scale 4–32): after pruning, 8–16 shared values per kernel with int8
    export is the smallest gzip file the techniques make."""

    number_of_clusters: IntRange = IntRange(low=4, high=32, log=True)
    epochs: IntRange = IntRange(low=1, high=3)
    learning_rate: FloatRange = FloatRange(low=1e-5, high=1e-3, log=True)


class QATSpace(Strict):
    epochs: IntRange = IntRange(low=1, high=3)
    learning_rate: FloatRange = FloatRange(low=1e-5, high=1e-3, log=True)


class DistillationSpace(Strict):
    """The student is the baseline's architecture at `width_multiplier`, trained from scratch
    for `epochs` at `learning_rate` against the baseline as teacher."""

    width_multiplier: FloatRange = FloatRange(low=0.25, high=0.75)
    temperature: FloatRange = FloatRange(low=1.0, high=8.0)
    alpha: FloatRange = FloatRange(low=0.0, high=0.5)
    epochs: IntRange = IntRange(low=2, high=8)
    learning_rate: FloatRange = FloatRange(low=3e-4, high=3e-3, log=True)


class SearchSpace(Strict):
    """Which technique chains to try (CHAINS; each in the order it runs), each technique's
    settings, and the export format of the trial's model (its figures are the trial's values)."""

    chains: list[Chain] = Field(
        default_factory=lambda: list(DEFAULT_CHAINS),  # type: ignore[arg-type]
        min_length=1,
        max_length=len(CHAINS),
    )
    exports: list[ExportFormat] = Field(
        default_factory=lambda: list[ExportFormat](["int8"]), min_length=1, max_length=4
    )
    pruning: PruningSpace = PruningSpace()
    clustering: ClusteringSpace = ClusteringSpace()
    qat: QATSpace = QATSpace()
    distillation: DistillationSpace = DistillationSpace()
    grid_points: int = Field(
        default=3, ge=1, le=10, description="grid strategy: values per dimension of each technique's main setting"
    )

    @model_validator(mode="after")
    def _unique(self) -> SearchSpace:
        if len(set(self.chains)) != len(self.chains):
            raise SpecError("chains", "chains must not repeat")
        if len(set(self.exports)) != len(self.exports):
            raise SpecError("exports", "exports must not repeat a format")
        if self.pruning.target_sparsity.high > 0.99:
            raise SpecError("pruning.target_sparsity.high", "target sparsity is at most 0.99")
        if not 0.25 <= self.distillation.width_multiplier.low <= self.distillation.width_multiplier.high <= 2.0:
            raise SpecError("distillation.width_multiplier", "student width multipliers lie in 0.25..2.0")
        if self.distillation.temperature.low < 1.0 or self.distillation.temperature.high > 100.0:
            raise SpecError("distillation.temperature", "temperatures lie in 1..100")
        if self.distillation.alpha.high > 1.0:
            raise SpecError("distillation.alpha.high", "alpha lies in 0..1")
        for name, space in (("pruning", self.pruning), ("clustering", self.clustering), ("qat", self.qat)):
            if space.learning_rate.high > 10.0 or space.learning_rate.low <= 0:
                raise SpecError(f"{name}.learning_rate", "learning rates lie in (0, 10]")
        if self.clustering.number_of_clusters.low < 2:
            raise SpecError("clustering.number_of_clusters.low", "at least 2 clusters")
        return self


class Constraint(Strict):
    """The hard bar: `metric` of a trial's model ≥ the baseline's minus `max_drop`, in
    percentage `points` (1.0 → 0.01 of accuracy) or `percent` of the baseline's value."""

    metric: Literal["accuracy", "f1"] = "accuracy"
    max_drop: float = Field(default=1.0, ge=0.0, le=100.0)
    unit: Literal["points", "percent"] = "points"

    def bar(self, baseline: float) -> float:
        """The lowest acceptable value, a fraction 0–1."""
        if self.unit == "points":
            return baseline - self.max_drop / 100.0
        return baseline * (1.0 - self.max_drop / 100.0)


class Budget(Strict):
    """When the study stops asking for trials: the first limit reached (None: no limit of that
    kind; at least one must be set)."""

    max_trials: int | None = Field(default=30, ge=1, le=10_000)
    wall_seconds: float | None = Field(default=None, gt=0, le=90 * 86400)
    worker_minutes: float | None = Field(default=None, gt=0, le=10_000_000)

    @model_validator(mode="after")
    def _some_limit(self) -> Budget:
        if self.max_trials is None and self.wall_seconds is None and self.worker_minutes is None:
            raise SpecError(
                "max_trials", "a budget needs at least one limit (max_trials, wall_seconds, worker_minutes)"
            )
        return self


class EarlyStopping(Strict):
    """The two stopping rules (backend/dispatch/study_rules.py states them)."""

    prune_trials: bool = Field(
        default=True, description="stop trials whose validation accuracy can no longer reach the bar"
    )
    prune_margin: float = Field(
        default=0.01, ge=0.0, le=1.0, description="added to the optimistic bound: validation and test accuracy differ"
    )
    min_epochs: int = Field(default=2, ge=1, le=1000, description="epochs a trial runs before it may be pruned")
    stop_study: bool = Field(default=True, description="stop when the hypervolume has stopped improving")
    patience_trials: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="K: trials over which it must improve (default: two NSGA-II generations, at least 10)",
    )
    min_improvement: float = Field(
        default=0.01, ge=0.0, le=1.0, description="ε: relative hypervolume gain over K trials"
    )


class StudySpec(Strict):
    """A whole study. `objectives` are minimised (costs) or maximised (accuracy, f1); the first
    cost objective is the hypervolume's x axis. Trials fine-tune the baseline's model
    (`model.init_from_run_id`), except distillation, which trains a fresh student taught by it.

    The baseline is exactly one of `baseline_run_id` (a finished run) and `baseline_model_id`
    (an uploaded model, measured on `dataset` by a baseline run the API creates; the study
    waits for that run). Raises SpecError naming the field when neither or both are given, or
    when `dataset` is missing with a model baseline or given with a run baseline."""

    name: Name = "study"
    experiment: Name | None = Field(default=None, description="default: the study's name")
    baseline_run_id: int | None = Field(
        default=None, ge=1, le=MAX_ID, description="a finished (succeeded) run with a Keras model"
    )
    baseline_model_id: int | None = Field(
        default=None,
        ge=1,
        le=MAX_ID,
        description="an uploaded model (the id from POST /api/models) instead of baseline_run_id: the API "
        "measures it on `dataset` in a baseline run of its own and the study starts when that run succeeds",
    )
    dataset: DatasetSpec | None = Field(
        default=None,
        description="with baseline_model_id: the dataset to measure the model on and to train trials on",
    )
    objectives: list[Objective] = Field(default_factory=lambda: ["gzip_bytes", "accuracy"], min_length=1, max_length=4)  # type: ignore[arg-type]
    constraint: Constraint = Constraint()
    search_space: SearchSpace = SearchSpace()
    budget: Budget = Budget()
    strategy: Literal["nsga2", "tpe", "random", "grid"] = Field(
        default="tpe",
        description=(
            "Optuna sampler; TPE (multivariate, grouped: it models the chains' conditional settings) "
            "had the highest hypervolume over 3 seeds (docs/results.md, 'Sample efficiency')"
        ),
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    min_trials: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="never stop early before this many finished trials (default: half the trial budget, at least 10)",
    )
    early_stopping: EarlyStopping = EarlyStopping()
    limit_train: int | None = Field(
        default=None, ge=10, le=10_000_000, description="train trials on the first N examples (default: the baseline's)"
    )
    measurement_protocol: Literal["full", "quick", "off"] | None = Field(
        default=None, description="default: full with a latency objective, else quick"
    )

    @model_validator(mode="after")
    def _one_baseline(self) -> StudySpec:
        if (self.baseline_run_id is None) == (self.baseline_model_id is None):
            raise SpecError(
                "baseline_run_id",
                "give exactly one baseline: baseline_run_id (a finished run) or baseline_model_id (an uploaded model)",
            )
        if self.baseline_model_id is not None and self.dataset is None:
            raise SpecError("dataset", "baseline_model_id needs the dataset to measure the model on (dataset.name)")
        if self.baseline_run_id is not None and self.dataset is not None:
            raise SpecError("dataset", "a baseline run brings its own dataset: leave dataset out with baseline_run_id")
        return self

    @model_validator(mode="after")
    def _objectives(self) -> StudySpec:
        if len(set(self.objectives)) != len(self.objectives):
            raise SpecError("objectives", "objectives must not repeat")
        if not any(o in COST_OBJECTIVES for o in self.objectives):
            raise SpecError("objectives", f"at least one cost objective to minimise ({', '.join(COST_OBJECTIVES)})")
        if self.measurement_protocol == "off" and any(o.startswith("latency") for o in self.objectives):
            raise SpecError("measurement_protocol", "a latency objective needs latency measured (full or quick)")
        return self

    @property
    def cost_objective(self) -> str:
        """The hypervolume's x axis: the first cost objective."""
        return next(o for o in self.objectives if o in COST_OBJECTIVES)

    @property
    def stop_min_trials(self) -> int:
        """Trials told before the study may stop early: `min_trials` if given, else half the
        trial budget rounded up, at least 10 (10 without a trial budget). A 30-trial study
        stopped at trial 23 under a fixed 10 (docs/results.md, "Studies")."""
        if self.min_trials is not None:
            return self.min_trials
        return max(10, math.ceil(self.budget.max_trials / 2)) if self.budget.max_trials else 10

    @property
    def stop_patience(self) -> int:
        """K of the study-stopping rule: `early_stopping.patience_trials` if given, else two
        NSGA-II generations of this budget (2 × nsga2_population), at least 10, for every
        strategy: a plateau shorter than two generations is one generation's selection not
        having paid off yet."""
        if self.early_stopping.patience_trials is not None:
            return self.early_stopping.patience_trials
        return max(10, 2 * nsga2_population(self.budget.max_trials))


def nsga2_population(max_trials: int | None) -> int:
    """NSGA-II's population for a trial budget: a quarter of it, 4–50 (25 without a trial
    budget). Optuna's default of 50 would make a 30-trial study pure random search."""
    return max(4, min(50, (max_trials or 100) // 4))


def chain_techniques(chain: str) -> list[str]:
    """'pruning+qat' → ['pruning', 'qat']; 'none' → []."""
    return [] if chain == "none" else chain.split("+")


def study_protocol(study: StudySpec) -> Literal["full", "quick", "off"]:
    """The measurement protocol of the study's runs: the spec's, else full with a latency
    objective, else quick."""
    return study.measurement_protocol or ("full" if any(o.startswith("latency") for o in study.objectives) else "quick")


def baseline_spec(study: StudySpec, *, study_id: int) -> RunSpec:
    """The baseline run a study with `baseline_model_id` creates: the uploaded model measured as
    it came on the study's dataset (no training, no technique) with a float32 .tflite export,
    whose figures become the study's reference. The dataset keeps only the fields the user set,
    so defaults that depend on the model (normalize) are resolved at submit as for any run.
    Raises pydantic.ValidationError when the result is not a valid RunSpec."""
    assert study.baseline_model_id is not None and study.dataset is not None  # _one_baseline
    return RunSpec.model_validate(
        {
            "name": f"{study.name} baseline",
            "experiment": study.experiment or study.name,
            "kind": "train",
            "dataset": study.dataset.model_dump(exclude_unset=True),
            "model": {"upload_id": study.baseline_model_id},
            "training": {"epochs": 0},
            "exports": ["float32"],
            "measurement": {"protocol": study_protocol(study)},
            "tags": [f"study-baseline:{study_id}"],
            "notes": f"baseline of study {study_id} ({study.name}): uploaded model {study.baseline_model_id} "
            "measured as it came",
        }
    )


def trial_spec(
    study: StudySpec,
    *,
    study_id: int,
    number: int,
    baseline: RunSpec,
    recipe: dict[str, Any],
    baseline_run_id: int | None = None,
) -> RunSpec:
    """The RunSpec of one trial: the baseline's dataset and training settings plus the sampled
    recipe. `recipe` is flat: {"chain", "export", "<technique>.<setting>": value, ...} (the
    Optuna parameter names). Techniques fine-tune the baseline run's model (init_from_run_id,
    no base epochs); distillation trains a fresh student at the sampled width (teacher =
    baseline). `baseline_run_id` defaults to the spec's (a study from an uploaded model passes
    the baseline run it created). Raises pydantic.ValidationError/SpecError when the result is
    not a valid RunSpec."""
    run_id = baseline_run_id if baseline_run_id is not None else study.baseline_run_id
    assert run_id is not None
    names = chain_techniques(str(recipe["chain"]))
    techniques: list[Any] = []
    model = baseline.model.model_copy(update={"init_from_run_id": run_id, "upload_id": None})
    optimizer = baseline.training.optimizer
    epochs = 0
    for name in names:
        get = lambda key, n=name: recipe[f"{n}.{key}"]  # noqa: E731
        if name == "pruning":
            techniques.append(
                PruningSpec(
                    name="pruning",
                    target_sparsity=float(get("target_sparsity")),
                    epochs=int(get("epochs")),
                    learning_rate=float(get("learning_rate")),
                )
            )
        elif name == "clustering":
            techniques.append(
                ClusteringSpec(
                    name="clustering",
                    number_of_clusters=int(get("number_of_clusters")),
                    epochs=int(get("epochs")),
                    learning_rate=float(get("learning_rate")),
                )
            )
        elif name == "qat":
            techniques.append(QATSpec(name="qat", epochs=int(get("epochs")), learning_rate=float(get("learning_rate"))))
        elif name == "distillation":
            techniques.append(
                DistillationSpec(
                    name="distillation",
                    teacher_run_id=run_id,
                    temperature=float(get("temperature")),
                    alpha=float(get("alpha")),
                )
            )
            width = float(get("width_multiplier"))
            model = baseline.model.model_copy(update={"init_from_run_id": None, "upload_id": None})
            if model.architecture in WIDTH_ARCHITECTURES:
                model = model.model_copy(update={"width_multiplier": width})
            epochs = int(get("epochs"))
            optimizer = optimizer.model_copy(update={"learning_rate": float(get("learning_rate"))})
    dataset = baseline.dataset
    if study.limit_train is not None:
        dataset = dataset.model_copy(update={"limit_train": study.limit_train})
    protocol = study_protocol(study)
    measurement = (
        baseline.measurement.model_copy(update={"protocol": protocol})
        if protocol == baseline.measurement.protocol
        else MeasurementSpec(protocol=protocol)
    )
    training = baseline.training.model_copy(update={"epochs": epochs, "optimizer": optimizer, "early_stopping": None})
    data = {
        "name": f"{study.name} #{number}",
        "experiment": study.experiment or study.name,
        "kind": "train",
        "dataset": dataset.model_dump(),
        "model": model.model_dump(),
        "training": training.model_dump(),
        "techniques": [t.model_dump() for t in techniques],
        "exports": [str(recipe["export"])],
        "export_options": baseline.export_options.model_dump(),
        "measurement": measurement.model_dump(),
        "tags": [f"study:{study_id}"],
        "notes": f"trial {number} of study {study_id} ({study.name})",
    }
    return RunSpec.model_validate(data)
