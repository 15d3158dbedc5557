"""Issue 19 item 4: one value per logged series — at the best validation epoch (the default),
last, min or max — on SQLite and PostgreSQL."""

from __future__ import annotations

import math

import pytest
from sqlalchemy.orm import Session

from backend.store import metrics
from tests.factories import make_run


def _log(session: Session, run_id: int, points: list[tuple[str, int, float]]) -> None:
    metrics.log_batch(session, run_id=run_id, points=[metrics.Point(k, s, v, 0.0) for k, s, v in points])


def test_best_epoch_is_lowest_val_loss_and_other_keys_read_there(session: Session) -> None:
    run = make_run(session)
    # an overfitting run: val_loss is best at epoch 2 (step 20), accuracy keeps climbing
    _log(
        session,
        run.id,
        [
            ("val_loss", 10, 0.9), ("val_loss", 20, 0.4), ("val_loss", 30, 0.7), ("val_loss", 40, 0.4),
            ("val_accuracy", 10, 0.70), ("val_accuracy", 20, 0.85), ("val_accuracy", 30, 0.83), ("val_accuracy", 40, 0.90),
            ("loss", 5, 1.2), ("loss", 15, 0.6), ("loss", 25, 0.3), ("loss", 35, 0.1), ("loss", 40, 0.05),
        ],
    )  # fmt: skip
    conn = session.connection()
    assert metrics.best_metric_step(conn, run_id=run.id) == 20  # a tie keeps the earliest epoch
    keys = ["val_loss", "val_accuracy", "loss", "missing"]
    by = {
        how: metrics.summarize_metrics(conn, run_ids=[run.id], keys=keys, how=how)[run.id]
        for how in ("best", "last", "min", "max")
    }
    assert by["best"] == {
        "val_loss": 0.4,
        "val_accuracy": 0.85,
        "loss": pytest.approx(0.6),
    }  # loss: its point at or before step 20
    assert by["last"] == {"val_loss": 0.4, "val_accuracy": 0.90, "loss": pytest.approx(0.05)}
    assert by["min"]["val_accuracy"] == 0.70 and by["min"]["loss"] == pytest.approx(0.05)
    assert by["max"]["val_accuracy"] == 0.90 and by["max"]["val_loss"] == 0.9
    assert "missing" not in by["best"]


def test_without_val_loss_best_is_highest_val_accuracy_and_without_either_last(session: Session) -> None:
    acc_only, plain = make_run(session, name="acc"), make_run(session, name="plain")
    _log(
        session,
        acc_only.id,
        [("val_accuracy", 1, 0.5), ("val_accuracy", 2, 0.8), ("val_accuracy", 3, 0.6), ("loss", 3, 0.2)],
    )
    _log(session, plain.id, [("accuracy", 1, 0.5), ("accuracy", 2, math.nan)])
    conn = session.connection()
    out = metrics.summarize_metrics(
        conn, run_ids=[acc_only.id, plain.id], keys=["val_accuracy", "accuracy", "loss"], how="best"
    )
    assert out[acc_only.id] == {"val_accuracy": 0.8}  # loss starts after the best epoch: no value there
    assert out[plain.id] == {"accuracy": None}  # no best epoch: the last value, NaN as None
    with pytest.raises(ValueError, match="unknown summary"):
        metrics.summarize_metrics(conn, run_ids=[plain.id], keys=["accuracy"], how="median")
