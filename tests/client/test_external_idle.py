"""Issue 14 fault 9: an external run whose script stopped sending ends `failed` with "no data
for ..." after OPTIBOARD_EXTERNAL_IDLE_TIMEOUT_S (here 3 s, on a real API process with its
maintenance loop every 0.5 s); a run that keeps sending is left alone; a later write is refused
with a 409 that says why, and the Keras callback asked to resume it logs into a new run that
continues its steps."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest

import optiboard
from backend.store.migrate import upgrade
from tests.conftest import make_token, reserved_redis_db
from tests.stack import Api, stack_env, wait_for

IDLE_S = 3.0


@pytest.fixture(scope="module")
def idle_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    data = tmp_path_factory.mktemp("idle")
    with reserved_redis_db() as redis_url:
        db = f"sqlite:///{data / 'optiboard.db'}"
        upgrade(db)
        env = stack_env(
            data_dir=data,
            database_url=db,
            redis_url=redis_url,
            OPTIBOARD_REAPER_INTERVAL_S="0.5",
            OPTIBOARD_EXTERNAL_IDLE_TIMEOUT_S=str(IDLE_S),
        )
        api = Api(env, log=data / "api.log")
        try:
            yield api.url, make_token(db)
        finally:
            api.stop()


def test_an_abandoned_external_run_ends_failed_and_refuses_late_writes(idle_api: tuple[str, str]) -> None:
    url, token = idle_api
    ob = optiboard.Client(url, token=token)
    abandoned = ob.create_external_run("abandoned", experiment="idle")["id"]
    alive = ob.create_external_run("alive", experiment="idle")["id"]
    ob.log_points(abandoned, [("loss", 1, 1.0)])
    started = time.monotonic()
    step = 0
    while time.monotonic() - started < 2.5 * IDLE_S:  # `alive` sends a point every 0.5 s
        step += 1
        ob.log_points(alive, [("loss", step, 1.0)])
        time.sleep(0.5)
    run = ob.get_run(abandoned)
    assert run["status"] == "failed"
    assert run["error"].startswith("no data for 3 s (last data at ")
    assert ob.get_run(alive)["status"] == "running"
    with pytest.raises(optiboard.OptiboardError) as e:
        ob.log_points(abandoned, [("loss", 2, 1.0)])
    assert e.value.status == 409
    assert "failed (no data for 3 s" in str(e.value) and "log into a new external run" in str(e.value)
    ob.finish(alive)
    assert ob.get_run(alive)["status"] == "succeeded"
    ob.close()


@pytest.mark.parametrize("kname", ["keras", "tf_keras"])
def test_the_callback_resuming_an_ended_run_continues_in_a_new_one(idle_api: tuple[str, str], kname: str) -> None:
    import importlib

    K = importlib.import_module(kname)
    url, token = idle_api
    ob = optiboard.Client(url, token=token)
    from optiboard.keras import OptiboardCallback

    x = np.random.default_rng(0).random((64, 8), dtype="float32")
    y = np.arange(64) % 3
    model = K.Sequential([K.layers.Input((8,)), K.layers.Dense(3)])
    model.compile("sgd", K.losses.SparseCategoricalCrossentropy(from_logits=True))
    first = OptiboardCallback(ob, run_name=f"paused-{kname}", experiment="idle", finish=False)
    model.fit(x, y, batch_size=16, epochs=1, callbacks=[first], verbose=0)
    old = first.run_id
    wait_for(lambda: ob.get_run(old)["status"] == "failed", timeout=6 * IDLE_S, what="the idle reaper")
    again = OptiboardCallback(ob, run_id=old)
    model.fit(x, y, batch_size=16, epochs=1, callbacks=[again], verbose=0)
    assert again.run_id != old
    new = ob.get_run(again.run_id)
    assert new["status"] == "succeeded" and new["name"] == f"paused-{kname} (resumed from run {old})"
    assert ob.metrics(again.run_id, keys=["loss"])["loss"]["steps"] == [5, 6, 7, 8]
    assert ob.metrics(again.run_id, keys=["epoch"])["epoch"]["values"] == [2.0]
    assert ob.metrics(old, keys=["loss"])["loss"]["steps"] == [1, 2, 3, 4]
    ob.close()
