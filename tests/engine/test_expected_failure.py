"""An expected failure (a dataset this worker does not have) ends the run with one line that
says what to do, in the run's log and the worker's log, without a traceback (issue 16 item 10),
and the loader is never asked to download."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from backend.store import runs  # noqa: E402
from backend.store.db import make_engine, make_sessionmaker, unit_of_work  # noqa: E402
from backend.store.migrate import upgrade  # noqa: E402
from runspec.spec import RunSpec  # noqa: E402
from worker import execution  # noqa: E402


def test_a_missing_dataset_fails_the_run_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    db = f"sqlite:///{tmp_path / 'ob.db'}"
    monkeypatch.setenv("OPTIBOARD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("OPTIBOARD_DATABASE_URL", db)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras-home"))
    monkeypatch.setattr(execution, "_factory", None)
    upgrade(db)
    factory = make_sessionmaker(make_engine(db))
    with unit_of_work(factory) as s:
        run_id = runs.create_run(s, spec=RunSpec.model_validate({"name": "no-mnist", "dataset": {"name": "mnist"}})).id

    with caplog.at_level(logging.INFO):
        assert execution.execute(run_id, worker="t@h") == "failed"
    with unit_of_work(factory) as s:
        run = runs.get_run(s, run_id=run_id)
    assert run is not None and run.status == "failed"
    assert run.error.startswith("dataset 'mnist' is not on this worker: missing mnist.npz in ")
    assert "\n" not in run.error and "Error:" not in run.error
    assert run.log_tail[-1].endswith(f" failed: {run.error}")  # "HH:MM:SS failed: …"
    assert not any("Traceback" in line for line in run.log_tail)
    failed = [r for r in caplog.records if "failed" in r.getMessage()]
    assert failed and all(r.exc_info is None for r in failed)  # one line, no traceback
