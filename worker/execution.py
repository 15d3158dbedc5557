"""One job, start to end: claim the run's lease, run the engine with a store-backed reporter,
and leave the run in a terminal state whatever happens."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from backend.core.settings import Settings
from backend.store import datasets, runs, uploaded_models, variants
from backend.store.artifacts import (
    checkpoint_manifest_path,
    checkpoint_relative_path,
    copy_with_sha256,
    resolve_inside,
    sha256_file,
    writable_inside,
)
from backend.store.db import make_engine, make_sessionmaker, unit_of_work
from runspec.modelfile import KERAS3, tf_keras_copy_filename
from runspec.spec import RunSpec
from worker.engine.contract import (  # plain Python: no TensorFlow in the parent
    Cancelled,
    ExpectedFailure,
    UploadedModel,
)
from worker.gpus import hardware_summary
from worker.reporter import DbReporter, LeaseLost
from worker.system_metrics import SystemMonitor

log = logging.getLogger(__name__)
T = TypeVar("T")

_factory: tuple[int, Settings, sessionmaker[Session]] | None = None


def _session_factory() -> tuple[Settings, sessionmaker[Session]]:
    """One engine per process, created after the fork (connections are not fork-safe)."""
    global _factory
    if _factory is None or _factory[0] != os.getpid():
        settings = Settings()
        settings.ensure_dirs()
        engine = make_engine(settings.db_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms, pool_size=2)
        _factory = (os.getpid(), settings, make_sessionmaker(engine))
    return _factory[1], _factory[2]


def host_fingerprint() -> dict[str, Any]:
    """The worker's hardware description, stored with the run it claims, plus `pid` (which
    process holds the run: operators, and the crash tests, find it by this) and `gpu` (the GPU
    names in one line, or None; part of the run's API shape before `gpus` was)."""
    hardware = hardware_summary()
    return {**hardware, "pid": os.getpid(), "gpu": ", ".join(g["name"] for g in hardware["gpus"]) or None}


def execute(run_id: int, *, worker: str) -> str:
    settings, factory = _session_factory()
    with unit_of_work(factory) as session:
        lease = runs.claim_run(session, run_id=run_id, worker=worker, hardware=host_fingerprint())
        stored = runs.get_run(session, run_id=run_id)
    if lease is None or stored is None:
        log.info("run %s is not queued (duplicate delivery, cancelled or running elsewhere): skipped", run_id)
        return "skipped"

    def finish(status: str, error: str | None = None, **extra: float | int | None) -> None:
        with unit_of_work(factory) as session:
            runs.finish_run(session, run_id=run_id, lease=lease, status=status, error=error, **extra)  # type: ignore[arg-type]

    try:
        spec = RunSpec.model_validate(stored.spec)
    except ValidationError as e:
        finish("failed", f"stored spec no longer validates: {e}")
        return "failed"

    reporter = DbReporter(factory, run_id=run_id, lease=lease, artifact_root=settings.artifacts).start()
    # the job's own CPU/memory(/GPU) samples and peak RSS, from here to the end of the engine's work
    monitor = SystemMonitor(reporter.log_metrics, interval_s=settings.system_metrics_interval_s).start()
    workdir = settings.data_dir / "work" / f"run-{run_id}-{lease[:8]}"
    workdir.mkdir(parents=True, exist_ok=True)
    outcome = "failed"
    try:
        from worker.engine.job import run_job  # TensorFlow is imported here, in the job's process

        # claim_run already counted this attempt
        reporter.log(f"attempt {stored.attempt} of {stored.max_attempts} on {worker} (pid {os.getpid()})")
        summary = on_a_fresh_stack(
            run_job,
            spec,
            reporter,
            workdir=workdir,
            resolve_model=lambda rid: _model_path(factory, settings, rid),
            resolve_upload=lambda did: _upload_path(factory, settings, did),
            resolve_uploaded_model=lambda mid: _uploaded_model(factory, settings, mid),
            resolve_checkpoint=lambda rid, epoch: checkpoint_path(settings.artifacts, rid, epoch),
            max_dataset_bytes=settings.max_dataset_bytes,
            max_dataset_ratio=settings.max_dataset_ratio,
        )
        monitor.stop()
        reporter.close()
        reporter.flush()  # raises LeaseLost before a lost attempt stores a checkpoint
        store_checkpoints(workdir / "checkpoints", settings.artifacts, run_id)
        finish("succeeded", None, train_seconds=summary.train_seconds, peak_memory_bytes=monitor.peak_rss_bytes)
        outcome = "succeeded"
    except LeaseLost:
        log.warning("run %s: lease lost (reaped or cancelled elsewhere); stopping without writing", run_id)
        outcome = "lost"
    except Exception as e:
        monitor.stop()
        reporter.close()
        cancelled = isinstance(e, Cancelled) or reporter.state == "cancel"
        try:
            if not cancelled:
                # an expected failure is one line; anything else keeps its traceback's tail
                reporter.log(
                    f"failed: {e}"[:1000]
                    if isinstance(e, ExpectedFailure)
                    else "".join(traceback.format_exception(e)[-3:]).strip()[-1000:]
                )
            reporter.flush()
        except LeaseLost:
            return "lost"
        except Exception:
            log.exception("run %s: final flush failed", run_id)
        if cancelled:
            finish("cancelled", "cancelled by user")
            outcome = "cancelled"
        else:
            finish("failed", (str(e) if isinstance(e, ExpectedFailure) else f"{type(e).__name__}: {e}")[:5000])
            if isinstance(e, ExpectedFailure):
                log.warning("run %s failed: %s", run_id, e)
            else:
                log.exception("run %s failed", run_id)
    finally:
        monitor.stop()
        reporter.close()
        shutil.rmtree(workdir, ignore_errors=True)
        _release_memory()
    return outcome


def on_a_fresh_stack(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """fn(*args, **kwargs) on the process's job thread, waited for; its exception is raised here.

    TensorFlow records the Python stack of every op it creates while building a graph
    (`tf_stack.extract_stack`: Keras tracing, the SavedModel export inside the TFLite converter),
    and a Celery task runs ~35 frames deep (runpy, typer, Celery's worker, billiard's process,
    the task tracer). From there a digits job spent ~200 ms more CPU walking those frames
    (py-spy); the job thread starts 4 frames deep. It is one long-lived thread, not one per job:
    TensorFlow keeps per-thread state that a finished thread leaves behind (+2.6 MB RSS per job
    with a new thread each time, flat with one).
    """
    return _job_thread().submit(fn, *args, **kwargs).result()


_executor: tuple[int, ThreadPoolExecutor] | None = None


def _job_thread() -> ThreadPoolExecutor:
    global _executor
    if _executor is None or _executor[0] != os.getpid():  # made after the fork, in the job process
        _executor = (os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="job"))
    return _executor[1]


def _release_memory() -> None:
    """Free the job's models before the next job in this warm process."""
    try:
        from worker.engine.tfsetup import release_memory
    except ImportError:
        return
    release_memory()


def _model_path(factory: sessionmaker[Session], settings: Settings, run_id: int) -> Path:
    """The Keras file of a finished run (an optimize run's parent, a distillation's teacher, an
    initial model), checked against its stored SHA-256 before the job reads a byte of it.
    Raises ValueError (the run fails with it as its reason): no model, missing, damaged."""
    with unit_of_work(factory) as session:
        keras = [v for v in variants.list_variants(session, run_ids=[run_id]) if v.format == "keras"]
        if not keras:
            raise ValueError(f"run {run_id} has no stored Keras model")
        try:
            return variants.verified_file(session, variant=keras[0], root=settings.artifacts)
        except variants.ArtifactUnavailable as e:
            problem = e
    # outside the unit of work, which has committed the damage mark by now
    raise ValueError(f"the model file of run {run_id} cannot be used: {problem}")


def store_checkpoints(folder: Path, root: Path, run_id: int) -> dict[str, str]:
    """The checkpoints a job left in `folder` (epoch-<n>.keras, training.checkpoint_every_epochs)
    copied under the artifact root with their SHA-256, then the manifest {"<n>": sha256} written
    last (a checkpoint is resolvable only once every file is in place). Returns the manifest."""
    manifest: dict[str, str] = {}
    files = sorted(folder.glob("epoch-*.keras"), key=lambda f: int(f.stem.removeprefix("epoch-")))
    for f in files:
        epoch = int(f.stem.removeprefix("epoch-"))
        manifest[str(epoch)] = copy_with_sha256(f, writable_inside(root, checkpoint_relative_path(run_id, epoch)))
    if manifest:
        writable_inside(root, checkpoint_manifest_path(run_id)).write_text(json.dumps(manifest), encoding="utf-8")
    return manifest


def checkpoint_path(root: Path, run_id: int, epoch: int) -> Path:
    """The file of run `run_id`'s checkpoint after `epoch`, checked against the SHA-256 stored
    with it. Raises ValueError naming what is missing: no checkpoints, not that epoch, damaged."""
    manifest_file = resolve_inside(root, checkpoint_manifest_path(run_id))
    if manifest_file is None:
        raise ValueError(f"run {run_id} kept no checkpoints (it ran without training.checkpoint_every_epochs)")
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    if str(epoch) not in manifest:
        kept = ", ".join(sorted(manifest, key=int))
        raise ValueError(f"run {run_id} kept no checkpoint after epoch {epoch}; it kept epochs {kept}")
    path = resolve_inside(root, checkpoint_relative_path(run_id, epoch))
    if path is None or sha256_file(path) != manifest[str(epoch)]:
        raise ValueError(f"the checkpoint of run {run_id} after epoch {epoch} is missing or damaged")
    return path


def _upload_path(factory: sessionmaker[Session], settings: Settings, dataset_id: int) -> Path:
    """The .npz of uploaded dataset `dataset_id`, checked against the SHA-256 recorded when it
    was uploaded (`info.sha256`) before the job reads a byte of it; a dataset uploaded before
    digests were kept has its digest recorded now and checked from then on.
    Raises ValueError (the run fails with it as its reason): no such dataset, missing, damaged."""
    with unit_of_work(factory) as session:
        record = datasets.get_dataset(session, dataset_id=dataset_id)
    if record is None:
        raise ValueError(f"dataset {dataset_id} does not exist")
    path = resolve_inside(settings.uploads, record.filename)
    if path is None or not path.is_file():
        raise ValueError(f"the file of dataset {dataset_id} is missing")
    actual = sha256_file(path)
    expected = record.info.get("sha256")
    if not expected:
        with unit_of_work(factory) as session:
            datasets.record_sha256(session, dataset_id=dataset_id, sha256=actual)
    elif actual != expected:
        raise ValueError(
            f"the file of dataset {dataset_id} is damaged: its SHA-256 {actual[:16]}… differs from "
            f"the {str(expected)[:16]}… recorded at upload; upload the dataset again"
        )
    return path


def _uploaded_model(factory: sessionmaker[Session], settings: Settings, model_id: int) -> UploadedModel:
    """An uploaded model as the job reads it: for a Keras 3 upload, its tf-keras copy. The file
    is checked against the SHA-256 recorded when it was uploaded before the job reads a byte of
    it. Raises ValueError (the run fails with it as its reason): no such model, missing,
    damaged, or a Keras 3 model without a tf-keras copy."""
    with unit_of_work(factory) as session:
        record = uploaded_models.get_model(session, model_id=model_id)
    if record is None:
        raise ValueError(f"model {model_id} does not exist (was it deleted?)")
    name, sha256 = record.filename, record.sha256
    if record.keras_flavour == KERAS3:
        copy = record.preflight.get("tf_keras_copy") or {}
        if copy.get("status") != "yes":
            raise ValueError(f"model {model_id} has no tf-keras copy: {copy.get('reason', 'none was made')}")
        name, sha256 = tf_keras_copy_filename(record.filename), str(copy.get("sha256"))
    path = resolve_inside(settings.artifacts, name)
    if path is None or not path.is_file():
        raise ValueError(f"the file of model {model_id} is missing")
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != sha256:
        raise ValueError(f"the file of model {model_id} is damaged (its SHA-256 differs from the upload's)")
    return UploadedModel(
        id=record.id,
        name=record.name,
        format=record.format,
        path=path,
        size_bytes=record.size_bytes,
        preflight=record.preflight,
    )
