"""A run's metric-key limit (OPTIBOARD_MAX_METRIC_KEYS_PER_RUN, here 25 on a real API process)
costs only the keys past it. The server refuses a whole batch that would pass the limit (nothing
of it is stored, 422 `too_many_metric_keys`); the client used to drop that batch whole, so the
loss points sharing it were lost, and every later batch with one of the new keys again. Now the
client keeps the keys the run holds and as many new ones as fit, drops the rest with one
warning naming them, and the Keras callback's `loss`, `train_loss` and `epoch` all arrive."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import optiboard
from backend.store.migrate import upgrade
from tests.conftest import make_token, reserved_redis_db
from tests.stack import Api, stack_env

LIMIT = 25


@pytest.fixture(scope="module")
def small_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    data = tmp_path_factory.mktemp("keylimit")
    with reserved_redis_db() as redis_url:
        db = f"sqlite:///{data / 'optiboard.db'}"
        upgrade(db)
        env = stack_env(
            data_dir=data, database_url=db, redis_url=redis_url, OPTIBOARD_MAX_METRIC_KEYS_PER_RUN=str(LIMIT)
        )
        api = Api(env, log=data / "api.log")
        try:
            yield api.url, make_token(db)
        finally:
            api.stop()


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_the_client_keeps_every_point_of_the_keys_that_fit(
    small_api: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    url, token = small_api
    with optiboard.Client(url, token=token, batch_size=50) as ob:
        rid = ob.create_external_run("many-keys", experiment="keys")["id"]
        with caplog.at_level(logging.WARNING, logger="optiboard"):
            ob.log_points(rid, [(f"k{i:02d}", 0, float(i)) for i in range(20)])  # 20 keys stored
            for step in range(1, 11):  # then 10 new keys a step beside the 20 known ones
                ob.log_metrics(rid, {"loss": 1.0 / step, **{f"new{i}": float(i) for i in range(9)}}, step=step)
                ob.log_metrics(rid, {f"k{i:02d}": float(step) for i in range(20)}, step=step)
            ob.finish(rid)
        series = ob.metrics(rid, max_points=100_000)
        assert len(series) == LIMIT
        assert series["loss"]["steps"] == list(range(1, 11))
        assert series["loss"]["values"] == pytest.approx([1.0 / s for s in range(1, 11)])
        assert all(series[f"k{i:02d}"]["steps"] == list(range(11)) for i in range(20))
        assert [f"new{i}" for i in range(4)] == sorted(k for k in series if k.startswith("new"))
        assert all(series[f"new{i}"]["steps"] == list(range(1, 11)) for i in range(4))
        limit = [w for w in _warnings(caplog) if "OPTIBOARD_MAX_METRIC_KEYS_PER_RUN" in w]
        assert len(limit) == 1 and "5 new keys are not logged: new4, new5, new6, new7, new8" in limit[0], limit
        assert not [w for w in _warnings(caplog) if "refused" in w]
        assert ob.get_run(rid)["status"] == "succeeded"
        assert ob.dropped == 50  # 5 keys x 10 steps


@pytest.mark.parametrize("kname", ["keras", "tf_keras"])
def test_the_callback_past_the_key_limit_keeps_loss_and_epochs(
    small_api: tuple[str, str], kname: str, caplog: pytest.LogCaptureFixture
) -> None:
    from sklearn.datasets import load_digits

    from optiboard.keras import OptiboardCallback

    K: Any = importlib.import_module(kname)
    x, y = load_digits(return_X_y=True)
    x, y = (x[:320] / 16.0).astype("float32"), y[:320]
    K.utils.set_random_seed(0)
    model = K.Sequential([K.layers.Input((64,)), K.layers.Dense(10)])
    # 10 keys a batch; 22 more at each epoch end (train_*, val_*, lr, epoch): 32 > 25
    metrics = [K.metrics.SparseTopKCategoricalAccuracy(k=i, name=f"top{i}") for i in range(1, 10)]
    model.compile("adam", K.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=metrics)
    with optiboard.Client(small_api[0], token=small_api[1], batch_size=64) as ob:
        cb = OptiboardCallback(ob, run_name=f"keys-{kname}", experiment="keys")
        with caplog.at_level(logging.WARNING, logger="optiboard"):
            h = model.fit(x, y, batch_size=32, epochs=2, validation_split=0.2, callbacks=[cb], verbose=0)
        assert ob.get_run(cb.run_id)["status"] == "succeeded"
        s = ob.metrics(cb.run_id, max_points=100_000)
        assert len(s) == LIMIT
        assert s["loss"]["steps"] == list(range(1, 17))
        assert s["epoch"] == {"steps": [8, 16], "values": [1.0, 2.0]}
        assert s["train_loss"]["values"] == pytest.approx(h.history["loss"], rel=1e-6)
        assert all(len(v["steps"]) == 16 for k, v in s.items() if k.startswith("top"))
        limit = [w for w in _warnings(caplog) if "OPTIBOARD_MAX_METRIC_KEYS_PER_RUN" in w]
        assert len(limit) == 1 and "7 new keys are not logged" in limit[0], limit
        assert not [w for w in _warnings(caplog) if "refused" in w]
        assert np.isfinite(s["train_loss"]["values"]).all()
