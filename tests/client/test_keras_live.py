"""The callback at the level a user meets it: a real `model.fit` with the real OptiboardCallback
against a real API process.

- Curves grow while fit runs: after each epoch the run's keys and its `epoch` points are on
  the server while fit is still running (read from another callback's on_epoch_end). They used
  to appear all at once when the client's 1000-point batch filled up.
- A server that is killed mid-fit does not hold up the end of fit: training goes on, and
  on_train_end gives up within `end_timeout_s` (5 s) with one warning that counts the points
  not sent and says the run stays running until the idle timeout (it took 35-50 s).
- The same bound at interpreter exit, when a caught exception left the fit unfinished.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import optiboard
from backend.store.migrate import upgrade
from tests.client.netproxy import PASS, RESET, Proxy
from tests.conftest import Stack, make_token, reserved_redis_db
from tests.stack import Api, stack_env, wait_for

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return (x[:320] / 16.0).astype("float32"), y[:320].astype("int64")


def mlp(K: Any) -> Any:
    K.utils.set_random_seed(0)
    model = K.Sequential([K.layers.Input((64,)), K.layers.Dense(32, activation="relu"), K.layers.Dense(10)])
    model.compile(
        optimizer=K.optimizers.Adam(0.01),
        loss=K.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def keys(url: str, token: str, rid: int) -> list[str]:
    r = httpx.get(f"{url}/api/runs/{rid}/metrics/keys", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    r.raise_for_status()
    return list(r.json()["keys"])


@pytest.mark.parametrize("kname", ["keras", "tf_keras"])
def test_curves_grow_while_fit_runs(kname: str, live_stack: Stack, digits: Any) -> None:
    from optiboard.keras import OptiboardCallback

    K = importlib.import_module(kname)
    x, y = digits
    ob = optiboard.Client(live_stack.url, token=live_stack.token)  # the defaults a user gets
    cb = OptiboardCallback(ob, run_name=f"live-{kname}", experiment="client-tests")
    seen: list[tuple[list[str], list[float]]] = []

    class ReadTheApi(K.callbacks.Callback):
        """Runs after OptiboardCallback's on_epoch_end, inside fit: what does the run page see?"""

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            def shown() -> tuple[list[str], list[float]] | None:
                epochs = ob.metrics(cb.run_id, keys=["epoch"]).get("epoch", {"values": []})["values"]
                return (keys(live_stack.url, live_stack.token, cb.run_id), epochs) if epoch + 1 in epochs else None

            seen.append(wait_for(shown, timeout=8, interval=0.1, what=f"epoch {epoch + 1} on the server during fit"))

    try:
        mlp(K).fit(x, y, batch_size=32, epochs=2, validation_split=0.2, callbacks=[cb, ReadTheApi()], verbose=0)
        assert len(seen) == 2
        assert {"loss", "accuracy", "train_loss", "train_accuracy", "val_loss", "epoch", "lr"} <= set(seen[0][0])
        assert seen[0][1] == [1.0] and seen[1][1] == [1.0, 2.0]
        assert ob.get_run(cb.run_id)["status"] == "succeeded"
        assert ob.metrics(cb.run_id, keys=["loss"], max_points=1000)["loss"]["steps"] == list(range(1, 17))
    finally:
        ob.close()


class OwnApi:
    """An API process of this test's own, on SQLite, to kill and start again."""

    def __init__(self, data: Path, redis_url: str) -> None:
        db = f"sqlite:///{data / 'optiboard.db'}"
        upgrade(db)
        self.env = stack_env(data_dir=data, database_url=db, redis_url=redis_url)
        self.token = make_token(db)
        self.data = data
        self.api = Api(self.env, log=data / "api.log")

    def kill(self) -> None:
        os.killpg(self.api.proc.pid, signal.SIGKILL)
        self.api.proc.wait(timeout=30)

    def start(self) -> None:
        self.api = Api(self.env, log=self.data / "api.log")

    def stop(self) -> None:
        self.api.stop()


@pytest.fixture
def own_api(tmp_path: Path) -> Iterator[OwnApi]:
    with reserved_redis_db() as redis_url:
        server = OwnApi(tmp_path, redis_url)
        try:
            yield server
        finally:
            server.stop()


def test_a_server_killed_mid_fit_does_not_hold_up_the_end(
    own_api: OwnApi, digits: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import keras as K

    from optiboard.keras import OptiboardCallback

    x, y = digits
    ob = optiboard.Client(own_api.api.url, token=own_api.token)  # defaults: 5 retries, end_timeout_s 5
    cb = OptiboardCallback(ob, run_name="server-killed", experiment="client-tests")
    marks: dict[str, float] = {}

    class KillTheServer(K.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if epoch == 0:  # once epoch 1 is on the server (checked below, after fit)
                try:
                    wait_for(lambda: ob.unsent(cb.run_id) == 0, timeout=10, what="epoch 1 sent")
                except TimeoutError:
                    pass
                own_api.kill()

    class EndClock(K.callbacks.Callback):
        """Before OptiboardCallback in the list: its on_train_end runs first."""

        def on_train_end(self, logs: Any = None) -> None:
            marks["unsent"] = ob.unsent(cb.run_id)
            marks["t0"], marks["wall0"] = time.monotonic(), time.time()

    try:
        with caplog.at_level(logging.WARNING, logger="optiboard"):
            h = mlp(K).fit(x, y, batch_size=32, epochs=3, callbacks=[EndClock(), cb, KillTheServer()], verbose=0)
            ended = time.monotonic() - marks["t0"]
        assert len(h.history["loss"]) == 3  # training went on
        assert ended < 5 + 3, f"the end of fit waited {ended:.1f} s"
        # epochs 2 and 3: 10 batches x (loss, accuracy) + (epoch, train_loss, train_accuracy, lr), each
        assert marks["unsent"] == 2 * (10 * 2 + 4)
        at_end = [
            r.getMessage() for r in caplog.records if r.created >= marks["wall0"] and r.name.startswith("optiboard")
        ]
        assert len(at_end) == 1, at_end
        assert at_end[0].startswith(f"optiboard: could not end run {cb.run_id} as succeeded within 5 s (end_timeout_s)")
        assert at_end[0].endswith(
            "; 48 metric points not sent. The run stays `running` until the server ends it `failed` after "
            "OPTIBOARD_EXTERNAL_IDLE_TIMEOUT_S without data (1 h by default)"
        )
        assert ob.unsent() == 0  # given up: nothing left for the exit flush to wait for
        own_api.start()  # what the warning said: the run is running, with epoch 1
        reader = optiboard.Client(own_api.api.url, token=own_api.token)
        assert reader.get_run(cb.run_id)["status"] == "running"
        assert reader.metrics(cb.run_id, keys=["epoch"])["epoch"]["values"] == [1.0]
        reader.close()
    finally:
        ob._outboxes.clear()
        ob.close()


SCRIPT = """
import atexit, sys, time
atexit.register(lambda: print("EXITED", time.monotonic(), flush=True))  # registered first: runs last
import numpy as np, keras, optiboard
from optiboard.keras import OptiboardCallback
ob = optiboard.Client(sys.argv[1], token=sys.argv[2])
x = np.random.default_rng(0).random((64, 8), dtype="float32"); y = np.arange(64) % 3
m = keras.Sequential([keras.layers.Input((8,)), keras.layers.Dense(3)])
m.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
cb = OptiboardCallback(ob, run_name="exit-bounded")
class Boom(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch == 2:
            raise ValueError("caught by the script")
try:
    m.fit(x, y, batch_size=8, epochs=2, callbacks=[cb, Boom()], verbose=0)
except ValueError:
    pass
print("RUN", cb.run_id, flush=True)
print("UNSENT", ob.unsent(cb.run_id), flush=True)
print("EXITING", time.monotonic(), flush=True)
"""


def test_the_end_at_interpreter_exit_is_bounded(live_stack: Stack) -> None:
    """The script catches fit's exception and exits with the fit unfinished, the server gone
    after the run was created: the exit hook ends the run within `end_timeout_s`, with one
    warning (it waited ~31 s in retries)."""
    proxy = Proxy(live_stack.url, lambda method, path: PASS if (method, path) == ("POST", "/api/runs") else RESET)
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:
        out = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(SCRIPT), proxy.url, live_stack.token],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
    finally:
        proxy.close()
    assert out.returncode == 0, out.stderr[-3000:]
    marks = dict(
        line.split() for line in out.stdout.splitlines() if line.split()[0] in ("RUN", "UNSENT", "EXITING", "EXITED")
    )
    assert float(marks["EXITED"]) - float(marks["EXITING"]) < 5 + 3
    assert int(marks["UNSENT"]) == 3  # loss at batches 1-3
    ends = [line for line in out.stderr.splitlines() if "could not end run" in line]
    assert len(ends) == 1, out.stderr[-3000:]
    assert f"could not end run {marks['RUN']} as failed within 5 s (end_timeout_s)" in ends[0]
    assert "3 metric points not sent" in ends[0] and "OPTIBOARD_EXTERNAL_IDLE_TIMEOUT_S" in ends[0]
    assert "not sent after" not in out.stderr  # the exit flush found nothing left to wait for
