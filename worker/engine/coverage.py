"""Technique coverage (issue 17, "Zoo coverage"): for each model source, the compatibility
preflight's prediction and the outcome of int8 PTQ, pruning, QAT and clustering run end to end
through `run_job`, and whether every failure was predicted ("0 surprises").

A source is data: an architecture (a `ModelSpec` as a dict, built by the engine), the path of a
tf-keras `.keras` model file (read as a finished run's model through `model.init_from_run_id`,
safe mode on; a file the engine cannot read yet fails every technique and is reported so), or an
`upload_file`: a `.keras` from Keras 3 or tf-keras taken the way an upload is (the static scan,
the sandbox's preflight with the tf-keras copy of a Keras 3 model, then runs with
`model.upload_id` and `training.epochs: 0`: the user's model is already trained).
For each source, one run trains the model (`training.epochs`) and exports int8 (PTQ); the other
techniques start from that run's Keras model (or the file) with `training.epochs: 0` and fine-tune
for one epoch. A technique counts as predicted supported when the preflight's summary for it is
"yes" or "fix" (a fix optiboard applies); QAT also needs full-int8 conversion to be supported.

Used by bench/zoo_coverage.py (the figures of docs/results.md) and tests/engine/test_zoo_coverage.py.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from runspec.spec import ModelSpec, RegularizationSpec, RunSpec
from worker.engine import preflight
from worker.engine.data import load_data
from worker.engine.job import run_job
from worker.engine.models import build_model, load_keras_model

TECHNIQUES = ("int8_ptq", "pruning", "qat", "clustering")
# preflight summaries each technique needs ("yes" or "fix")
NEEDS: dict[str, tuple[str, ...]] = {
    "int8_ptq": ("int8",),
    "pruning": ("prune",),
    "qat": ("qat", "int8"),
    "clustering": ("cluster",),
}
TECHNIQUE_SPECS: dict[str, list[dict[str, Any]]] = {
    "pruning": [{"name": "pruning", "target_sparsity": 0.5, "epochs": 1}],
    "qat": [{"name": "qat", "epochs": 1}],
    "clustering": [{"name": "clustering", "number_of_clusters": 8, "epochs": 1}],
}
EXPORTS = {"int8_ptq": ["int8"], "qat": ["int8"], "pruning": [], "clustering": []}


@dataclass(frozen=True)
class Source:
    """One model to cover: `architecture` (ModelSpec fields) or `model_file` (a tf-keras .keras
    path), named `name` in the results."""

    name: str
    architecture: dict[str, Any] | None = None
    model_file: str | None = None
    upload_file: str | None = None

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.architecture, self.model_file, self.upload_file)) != 1:
            raise ValueError(f"source {self.name!r}: give exactly one of architecture, model_file and upload_file")


@dataclass
class Outcome:
    """One technique on one source: `predicted` supported, `ok` end to end, the error's last
    line, wall seconds, and for a surprise (`predicted` and not `ok`) the flag."""

    predicted: bool
    ok: bool
    error: str | None
    seconds: float
    reason: str | None = None  # the preflight's reason when it predicted a failure

    @property
    def surprise(self) -> bool:
        return self.predicted and not self.ok


@dataclass
class SourceResult:
    name: str
    params: int | None
    preflight: dict[str, dict[str, Any]]  # the preflight's `techniques` summaries
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    error: str | None = None  # the source itself could not be built or read

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name, o in self.outcomes.items():
            out["outcomes"][name]["surprise"] = o.surprise
        return out


class _QuietReporter:
    """The engine's Reporter kept in memory (as the engine tests' RecordingReporter)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.variants: list[Any] = []

    def log_metrics(self, points: list[tuple[str, int, float]]) -> None:
        pass

    def progress(self, fraction: float, eta_seconds: float | None = None) -> None:
        pass

    def should_stop(self) -> bool:
        return False

    def add_variant(self, variant: Any) -> None:
        self.variants.append(variant)

    def log(self, message: str) -> None:
        self.lines.append(message)


def _no_upload(upload_id: int) -> Path:
    raise LookupError(f"no upload {upload_id}")


def _last_line(exc: BaseException) -> str:
    """The exception's type and the first line of its message (at most 500 characters)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:500]


def cover(
    source: Source, base: dict[str, Any], workdir: Path, *, techniques: tuple[str, ...] = TECHNIQUES
) -> SourceResult:
    """Preflight `source`, then run each of `techniques` on it through run_job.

    `base`: the RunSpec fields every run shares (dataset, training, measurement), as a dict;
    `workdir`: a folder for the runs' files. Never raises for a technique's failure: it is an
    Outcome with ok False and the error's last line."""
    if source.upload_file is not None:
        return _cover_upload(source, base, workdir, techniques)
    spec = RunSpec.model_validate(base)
    data = load_data(spec.dataset, _no_upload)
    try:
        if source.architecture is not None:
            model_spec = ModelSpec.model_validate(source.architecture)
            model = build_model(model_spec, data.input_shape, data.classes, RegularizationSpec())
        else:
            model_spec = None
            model = load_keras_model(Path(str(source.model_file)), f"model file {source.model_file}")
        report = preflight.keras_preflight(model, legacy=True)
    except Exception as exc:  # the source cannot be built or read: every technique fails
        result = SourceResult(source.name, None, {})
        result.error = _last_line(exc)
        for t in techniques:
            result.outcomes[t] = Outcome(False, False, result.error, 0.0, "the model could not be built or read")
        return result
    result = SourceResult(source.name, report["params"], report["techniques"])
    trained: Path | None = Path(str(source.model_file)) if source.model_file else None
    order = sorted(techniques, key=lambda t: t != "int8_ptq")  # PTQ's run trains the shared model
    for name in order:
        predicted, reason = _prediction(report, name)
        run: dict[str, Any] = {
            **base,
            "name": f"{source.name} {name}",
            "techniques": TECHNIQUE_SPECS.get(name, []),
            "exports": EXPORTS[name],
        }
        start_from = trained if name != "int8_ptq" or source.model_file else None
        if start_from is not None:
            run["model"] = {"init_from_run_id": 1}
            run["training"] = {**base.get("training", {}), "epochs": 0}
        else:
            run["model"] = model_spec.model_dump() if model_spec else {}
        folder = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=workdir))
        started = time.monotonic()
        try:
            run_job(
                RunSpec.model_validate(run),
                _QuietReporter(),
                workdir=folder,
                resolve_model=lambda _id, path=start_from: _resolve(path),
                resolve_upload=_no_upload,
            )
            ok, error = True, None
        except Exception as exc:
            ok, error = False, _last_line(exc)
        if trained is None and (folder / "model.keras").is_file():  # saved before the exports run
            trained = folder / "model.keras"
        result.outcomes[name] = Outcome(predicted, ok, error, round(time.monotonic() - started, 1), reason)
    result.outcomes = {t: result.outcomes[t] for t in techniques}
    return result


def _cover_upload(source: Source, base: dict[str, Any], workdir: Path, techniques: tuple[str, ...]) -> SourceResult:
    """An upload's path: scan, preflight (with the tf-keras copy of a Keras 3 model, as the
    sandboxed checker makes it: worker.engine.upload_check), then each technique on the model
    as uploaded through `model.upload_id`."""
    from runspec.modelfile import KERAS3, model_limits, scan_model_file
    from worker.engine.contract import UploadedModel

    path = Path(str(source.upload_file))
    copy = workdir / f"{source.name}.tf-keras.keras"
    try:
        scan = scan_model_file(path, path.name, model_limits(1 << 30))
        keras3 = scan.keras_flavour == KERAS3
        report = preflight.keras3_preflight(path, copy_to=copy) if keras3 else preflight.tf_keras_preflight(path)
    except Exception as exc:  # refused or unreadable: every technique fails, as the upload would
        result = SourceResult(source.name, None, {})
        result.error = _last_line(exc)
        for t in techniques:
            result.outcomes[t] = Outcome(False, False, result.error, 0.0, "the upload was refused")
        return result
    uploaded = UploadedModel(
        id=1,
        name=source.name,
        format="keras",
        path=copy if keras3 else path,
        size_bytes=path.stat().st_size,
        preflight=report,
    )
    result = SourceResult(source.name, report["params"], report["techniques"])
    for name in techniques:
        predicted, reason = _prediction(report, name)
        run: dict[str, Any] = {
            **base,
            "name": f"{source.name} {name}",
            "model": {"upload_id": 1},
            "training": {**base.get("training", {}), "epochs": 0},
            "techniques": TECHNIQUE_SPECS.get(name, []),
            "exports": EXPORTS[name],
        }
        folder = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=workdir))
        started = time.monotonic()
        try:
            run_job(
                RunSpec.model_validate(run),
                _QuietReporter(),
                workdir=folder,
                resolve_model=_resolve_nothing,
                resolve_upload=_no_upload,
                resolve_uploaded_model=lambda _id: uploaded,
            )
            ok, error = True, None
        except Exception as exc:
            ok, error = False, _last_line(exc)
        result.outcomes[name] = Outcome(predicted, ok, error, round(time.monotonic() - started, 1), reason)
    return result


def _prediction(report: dict[str, Any], technique: str) -> tuple[bool, str | None]:
    """Whether the preflight `report` calls `technique` supported ("yes" or "fix" for each
    summary it needs), and its reasons where it does not."""
    summaries = [report["techniques"][k] for k in NEEDS[technique]]
    predicted = all(s["status"] in ("yes", "fix") for s in summaries)
    return predicted, "; ".join(s["reason"] for s in summaries if s["status"] == "no" and s["reason"]) or None


def _resolve_nothing(run_id: int) -> Path:
    raise LookupError("an upload's runs start from the upload")


def _resolve(path: Path | None) -> Path:
    if path is None:
        raise LookupError("the base training of this source failed: no trained model to start from")
    return path


def totals(results: list[SourceResult]) -> dict[str, dict[str, Any]]:
    """Per technique: sources that completed, of how many, the share, and the surprises."""
    out: dict[str, dict[str, Any]] = {}
    for t in TECHNIQUES:
        rows = [r.outcomes[t] for r in results if t in r.outcomes]
        if not rows:
            continue
        done = sum(o.ok for o in rows)
        out[t] = {
            "completed": done,
            "sources": len(rows),
            "share": done / len(rows),
            "surprises": sum(o.surprise for o in rows),
            "false_alarms": sum((not o.predicted) and o.ok for o in rows),
        }
    return out
