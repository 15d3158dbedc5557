"""Issue 14 faults 1-4 at the level a user meets them: a real `model.fit` on digits with the
real OptiboardCallback against the real API (live_stack), with both Kerases: Keras 3 (`keras`,
which `tf.keras` is by default on TF 2.21) and tf-keras 2.21 (`tf_keras`)."""

from __future__ import annotations

import importlib
import logging
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import optiboard
from tests.conftest import Stack

REPO = Path(__file__).resolve().parents[2]
KERASES = ["keras", "tf_keras"]


@pytest.fixture(params=KERASES)
def K(request: pytest.FixtureRequest) -> Any:
    return importlib.import_module(request.param)


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return (x[:320] / 16.0).astype("float32"), y[:320].astype("int64")


@pytest.fixture
def ob(live_stack: Stack) -> optiboard.Client:
    c = optiboard.Client(live_stack.url, token=live_stack.token, batch_size=64)
    yield c
    c.close()


def mlp(K: Any, *, steps_per_execution: int = 1, metrics: list[Any] | None = None) -> Any:
    """The issue's 64→32→10 MLP."""
    K.utils.set_random_seed(0)
    model = K.Sequential([K.layers.Input((64,)), K.layers.Dense(32, activation="relu"), K.layers.Dense(10)])
    model.compile(
        optimizer=K.optimizers.Adam(0.01),
        loss=K.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=metrics or ["accuracy"],
        steps_per_execution=steps_per_execution,
    )
    return model


def series(ob: optiboard.Client, rid: int) -> dict[str, dict[str, list[Any]]]:
    return ob.metrics(rid, max_points=100_000)


def test_callback_works_with_both_kerases(K: Any, ob: optiboard.Client, digits: Any) -> None:
    """Fault 1: with tf_keras, fit raised AttributeError '_implements_train_batch_hooks'."""
    from optiboard.keras import OptiboardCallback

    x, y = digits
    cb = OptiboardCallback(ob, run_name=f"both-{K.__name__}", experiment="client-tests")
    history = mlp(K).fit(x, y, batch_size=32, epochs=2, validation_split=0.2, callbacks=[cb], verbose=0)
    run = ob.get_run(cb.run_id)
    assert run["status"] == "succeeded" and run["external"]
    s = series(ob, cb.run_id)
    assert s["loss"]["steps"] == list(range(1, 17))  # 256 training images, 8 batches per epoch
    assert s["epoch"] == {"steps": [8, 16], "values": [1.0, 2.0]}
    assert s["train_loss"]["values"] == pytest.approx(history.history["loss"], rel=1e-6)
    assert s["val_accuracy"]["values"] == pytest.approx(history.history["val_accuracy"], rel=1e-6)
    assert s["lr"]["values"] == pytest.approx([0.01, 0.01])


def test_steps_per_execution_counts_batches(K: Any, ob: optiboard.Client, digits: Any) -> None:
    """Fault 2: with steps_per_execution=4 the loss points landed at steps 1..6 with values
    about 4x too large. Now: steps count batches, each point is the mean over its batches, the
    same as the points of steps_per_execution=1 averaged over the same batches."""
    from optiboard.keras import OptiboardCallback

    x, y = digits
    got = {}
    for spe in (1, 4):
        cb = OptiboardCallback(ob, run_name=f"spe{spe}-{K.__name__}", experiment="client-tests")
        h = mlp(K, steps_per_execution=spe).fit(x, y, batch_size=32, epochs=2, shuffle=False, callbacks=[cb], verbose=0)
        got[spe] = (series(ob, cb.run_id), h.history)
    one, four = got[1][0], got[4][0]
    assert one["loss"]["steps"] == list(range(1, 21))
    assert four["loss"]["steps"] == [4, 8, 10, 14, 18, 20]  # 10 batches per epoch: 4 + 4 + 2
    per_batch = dict(zip(one["loss"]["steps"], one["loss"]["values"], strict=True))
    expected, start = [], 0
    for end in four["loss"]["steps"]:
        expected.append(np.mean([per_batch[s] for s in range(start + 1, end + 1)]))
        start = end
    assert four["loss"]["values"] == pytest.approx(expected, rel=2e-3)
    for s, h in got.values():  # epoch values are Keras's own, and each epoch's points average to it
        assert s["train_loss"]["values"] == pytest.approx(h["loss"], rel=1e-6)
    f_vals = four["loss"]["values"]
    epoch1 = (4 * f_vals[0] + 4 * f_vals[1] + 2 * f_vals[2]) / 10
    assert epoch1 == pytest.approx(got[4][1]["loss"][0], rel=1e-4)
    assert max(f_vals) < 3.0  # the bug stored 8.98, 7.86, ...


def test_resuming_a_run_appends(K: Any, ob: optiboard.Client, digits: Any) -> None:
    """Fault 3: the second fit's points collided with the first's steps and were dropped."""
    from optiboard.keras import OptiboardCallback

    x, y = digits
    model = mlp(K)
    first = OptiboardCallback(ob, run_name=f"resume-{K.__name__}", experiment="client-tests", finish=False)
    model.fit(x, y, batch_size=32, epochs=2, callbacks=[first], verbose=0)
    rid = first.run_id
    assert ob.get_run(rid)["status"] == "running"
    # a new process would build a new callback with the run id: no fit(initial_epoch) given
    second = OptiboardCallback(ob, run_id=rid, finish=False)
    model.fit(x, y, batch_size=32, epochs=2, callbacks=[second], verbose=0)
    # and once more, with initial_epoch as Keras' own resume idiom
    third = OptiboardCallback(ob, run_id=rid)
    h = model.fit(x, y, batch_size=32, epochs=6, initial_epoch=4, callbacks=[third], verbose=0)
    s = series(ob, rid)
    assert s["loss"]["steps"] == list(range(1, 61))
    assert s["epoch"]["steps"] == [10, 20, 30, 40, 50, 60]
    assert s["epoch"]["values"] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert s["train_loss"]["values"][-2:] == pytest.approx(h.history["loss"], rel=1e-6)
    assert ob.get_run(rid)["status"] == "succeeded"


def test_refused_metric_name_is_mapped_and_fit_finishes(
    K: Any, ob: optiboard.Client, digits: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Fault 4: a metric named "top@3" made fit raise OptiboardError 422 at the end, stored
    nothing and left the run running."""
    from optiboard.keras import OptiboardCallback

    x, y = digits
    model = mlp(K, metrics=["accuracy", K.metrics.SparseTopKCategoricalAccuracy(k=3, name="top@3")])
    cb = OptiboardCallback(ob, run_name=f"top3-{K.__name__}", experiment="client-tests")
    with caplog.at_level(logging.WARNING, logger="optiboard"):
        h = model.fit(x, y, batch_size=32, epochs=2, callbacks=[cb], verbose=0)
    run = ob.get_run(cb.run_id)
    assert run["status"] == "succeeded"
    s = series(ob, cb.run_id)
    assert {"loss", "accuracy", "top_3", "train_top_3", "train_loss"} <= set(s)
    assert len(s["top_3"]["steps"]) == 20
    assert s["train_top_3"]["values"] == pytest.approx(h.history["top@3"], rel=1e-6)
    named = [r.getMessage() for r in caplog.records if "top@3" in r.getMessage()]
    assert len(named) == 2, named  # `top@3` (batch) and `train_top@3` (epoch): one warning each


def test_a_fit_that_raises_ends_the_run_failed(K: Any, ob: optiboard.Client, digits: Any) -> None:
    """Fault 4's kind: fit raising inside `with cb:` ends the run failed with the reason, and
    the points logged before stay."""
    from optiboard.keras import OptiboardCallback

    class Boom(K.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if epoch == 1:
                raise RuntimeError("boom in epoch 2")

    x, y = digits
    cb = OptiboardCallback(ob, run_name=f"raises-{K.__name__}", experiment="client-tests")
    with pytest.raises(RuntimeError, match="boom"), cb:
        mlp(K).fit(x, y, batch_size=32, epochs=3, callbacks=[cb, Boom()], verbose=0)
    run = ob.get_run(cb.run_id)
    assert run["status"] == "failed"
    assert "RuntimeError: boom in epoch 2" in run["error"]
    assert series(ob, cb.run_id)["loss"]["steps"] == list(range(1, 21))


SCRIPT = """
import sys, numpy as np, importlib, optiboard
from optiboard.keras import OptiboardCallback
K = importlib.import_module(sys.argv[1])
x = np.random.default_rng(0).random((64, 8), dtype="float32"); y = np.arange(64) % 3
m = K.Sequential([K.layers.Input((8,)), K.layers.Dense(3)])
m.compile("sgd", K.losses.SparseCategoricalCrossentropy(from_logits=True))
cb = OptiboardCallback(optiboard.Client(sys.argv[2], token=sys.argv[3]), run_name="script-" + sys.argv[1])
class Boom(K.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch == 2:
            print("RUN", cb.run_id, flush=True)
            raise ValueError("the user's own bug")
m.fit(x, y, batch_size=8, epochs=2, callbacks=[cb, Boom()], verbose=0)
"""


def test_an_uncaught_exception_in_a_script_ends_the_run_failed(K: Any, live_stack: Stack, ob: optiboard.Client) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), K.__name__, live_stack.url, live_stack.token],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert out.returncode == 1 and "the user's own bug" in out.stderr
    rid = int(next(line for line in out.stdout.splitlines() if line.startswith("RUN")).split()[1])
    run = ob.get_run(rid)
    assert run["status"] == "failed" and "ValueError: the user's own bug" in run["error"]
    assert series(ob, rid)["loss"]["steps"] == [1, 2, 3]


def test_logging_problems_never_stop_training(
    K: Any, ob: optiboard.Client, digits: Any, live_stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """The run ended under the script (finished by someone else), the server unreachable from
    the start, a vector-valued metric: fit completes every epoch in each case."""
    from optiboard.keras import OptiboardCallback

    x, y = digits

    class EndRunAt(K.callbacks.Callback):
        def __init__(self, cb: OptiboardCallback) -> None:
            super().__init__()
            self.cb = cb

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if epoch == 0:
                ob.finish(self.cb.run_id, "cancelled")

    cb = OptiboardCallback(ob, run_name=f"ended-{K.__name__}", experiment="client-tests")
    with caplog.at_level(logging.WARNING, logger="optiboard"):
        h = mlp(K).fit(x, y, batch_size=32, epochs=3, callbacks=[cb, EndRunAt(cb)], verbose=0)
    assert len(h.history["loss"]) == 3
    assert ob.get_run(cb.run_id)["status"] == "cancelled"
    assert any("cancelled" in r.getMessage() for r in caplog.records)

    cb = OptiboardCallback(ob, run_id=999_999_999, run_name=f"missing-{K.__name__}")  # no such run
    h = mlp(K).fit(x, y, batch_size=32, epochs=1, callbacks=[cb], verbose=0)
    assert cb.run_id != 999_999_999 and ob.get_run(cb.run_id)["status"] == "succeeded"
    assert series(ob, cb.run_id)["loss"]["steps"] == list(range(1, 11))

    offline = optiboard.Client("http://127.0.0.1:9", token="x", timeout=2, retries=1, backoff_s=0.01)
    cb = OptiboardCallback(offline, run_name="offline")
    h = mlp(K).fit(x, y, batch_size=32, epochs=2, callbacks=[cb], verbose=0)
    assert len(h.history["loss"]) == 2 and cb.disabled and cb.run_id is None
    offline.close()

    f1 = K.metrics.F1Score(average=None) if hasattr(K.metrics, "F1Score") else None
    if f1 is not None:
        y1 = np.eye(10, dtype="float32")[y]
        model = K.Sequential([K.layers.Input((64,)), K.layers.Dense(10, activation="softmax")])
        model.compile("adam", "categorical_crossentropy", metrics=[f1])
        cb = OptiboardCallback(ob, run_name=f"vector-{K.__name__}", experiment="client-tests")
        model.fit(x, y1, batch_size=32, epochs=1, callbacks=[cb], verbose=0)
        s = series(ob, cb.run_id)
        assert {"train_f1_score/0", "train_f1_score/9"} <= set(s)
        assert all(math.isfinite(v) for v in s["train_f1_score/3"]["values"])


@pytest.mark.parametrize("spe", [3, 4])
def test_steps_per_execution_on_data_of_unknown_length(spe: int, ob: optiboard.Client, digits: Any) -> None:
    """Keras 3 only: tf-keras refuses steps_per_execution > 1 on data of unknown length. A
    filtered tf.data.Dataset (cardinality unknown) of 10 batches in calls of `spe`: Keras 3
    reports the epoch's last, partial call as a full one (batch 11 for 10 batches in calls of
    4) and never learns `steps`, so the points landed at 4, 8, 12, 16, 20, 24 with a last
    value averaged over 4 batches where 2 ran. Now steps count batches and values are the
    means over the batches that ran, as with steps_per_execution = 1."""
    import keras
    import tensorflow as tf

    from optiboard.keras import OptiboardCallback

    x, y = digits
    got = {}
    for k in (1, spe):
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32).filter(lambda a, b: True)
        assert int(ds.cardinality()) == tf.data.UNKNOWN_CARDINALITY
        cb = OptiboardCallback(ob, run_name=f"unknown-length-spe{k}", experiment="client-tests")
        h = mlp(keras, steps_per_execution=k).fit(ds, epochs=2, callbacks=[cb], verbose=0)
        got[k] = (series(ob, cb.run_id), h.history)
    one, many = got[1][0], got[spe][0]
    assert one["loss"]["steps"] == list(range(1, 21))
    calls = [b for b in range(spe, 11, spe)] + ([10] if 10 % spe else [])
    assert many["loss"]["steps"] == calls + [10 + c for c in calls]
    assert many["epoch"] == {"steps": [10, 20], "values": [1.0, 2.0]}
    per_batch = dict(zip(one["loss"]["steps"], one["loss"]["values"], strict=True))
    expected, start = [], 0
    for end in many["loss"]["steps"]:
        expected.append(np.mean([per_batch[s] for s in range(start + 1, end + 1)]))
        start = end
    assert many["loss"]["values"] == pytest.approx(expected, rel=2e-3)
    assert many["train_loss"]["values"] == pytest.approx(got[spe][1]["loss"], rel=1e-6)


def test_metric_names_of_any_alphabet_and_length_are_all_stored(
    K: Any, ob: optiboard.Client, digits: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Keras metric names the server's alphabet lacks: CJK names (both became "__": the first
    was skipped, the second refused), a name ending in a newline (passed the client's check,
    every point refused) and two long names that differ after 200 characters (the second was
    dropped as a collision). Each is stored, batch and epoch, under its own key."""
    from optiboard.client import metric_key
    from optiboard.keras import OptiboardCallback

    x, y = digits
    names = ["精度", "召回", "top3\n", "k" * 230 + "a", "k" * 230 + "b", "top 3/ok"]
    metrics = ["accuracy", *(K.metrics.SparseTopKCategoricalAccuracy(k=3, name=n) for n in names)]
    cb = OptiboardCallback(ob, run_name=f"alphabets-{K.__name__}", experiment="client-tests")
    with caplog.at_level(logging.WARNING, logger="optiboard"):
        h = mlp(K, metrics=metrics).fit(x, y, batch_size=32, epochs=2, callbacks=[cb], verbose=0)
    assert ob.get_run(cb.run_id)["status"] == "succeeded"
    s = series(ob, cb.run_id)
    for name in names:
        assert len(s[metric_key(name)]["steps"]) == 20, name
        assert s[metric_key(f"train_{name}")]["values"] == pytest.approx(h.history[name], rel=1e-6), name
    assert len({metric_key(n) for n in names}) == len(names)
    assert not [r for r in caplog.records if "refused" in r.getMessage() or "not logged" in r.getMessage()]


def test_a_fit_raising_on_data_of_unknown_length_keeps_the_held_back_call(ob: optiboard.Client, digits: Any) -> None:
    """Keras 3, steps_per_execution 4 on data of unknown length: each call's point waits for the
    next call or the epoch end. A fit that raises in between still stores the held-back call's
    point when the run ends failed."""
    import keras
    import tensorflow as tf

    from optiboard.keras import OptiboardCallback

    class Boom(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if batch == 7:
                raise RuntimeError("boom after the second call")

    x, y = digits
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32).filter(lambda a, b: True)
    cb = OptiboardCallback(ob, run_name="unknown-length-raises", experiment="client-tests")
    with pytest.raises(RuntimeError, match="boom"), cb:
        mlp(keras, steps_per_execution=4).fit(ds, epochs=2, callbacks=[cb, Boom()], verbose=0)
    assert ob.get_run(cb.run_id)["status"] == "failed"
    assert series(ob, cb.run_id)["loss"]["steps"] == [4, 8]


def test_a_flaky_network_through_the_end_of_fit_loses_nothing(K: Any, live_stack: Stack, digits: Any) -> None:
    """Fault 5 at the callback's level, with the failures where they hurt most: through a real
    TCP proxy, every second metrics reply is lost after the server stored the batch, every
    third other POST is reset, the first finish is reset and the second one's reply lost. Every
    point arrives once, and the run ends succeeded."""
    from optiboard.keras import OptiboardCallback
    from tests.client.netproxy import DROP_REPLY, PASS, RESET, Proxy

    seen = {"metrics": 0, "finish": 0}

    def policy(method: str, path: str) -> str:
        if method == "POST" and path.endswith("/metrics"):
            seen["metrics"] += 1
            n = seen["metrics"]
            return DROP_REPLY if n % 2 == 0 else RESET if n % 3 == 0 else PASS
        if path.endswith("/finish"):
            seen["finish"] += 1
            return {1: RESET, 2: DROP_REPLY}.get(seen["finish"], PASS)
        return PASS

    proxy = Proxy(live_stack.url, policy)
    flaky = optiboard.Client(proxy.url, token=live_stack.token, backoff_s=0.05, max_backoff_s=0.2, batch_size=7)
    try:
        x, y = digits
        cb = OptiboardCallback(flaky, run_name=f"flaky-{K.__name__}", experiment="client-tests", end_timeout_s=30)
        h = mlp(K).fit(x, y, batch_size=32, epochs=2, callbacks=[cb], verbose=0)
        with optiboard.Client(live_stack.url, token=live_stack.token) as direct:
            s = series(direct, cb.run_id)
            assert direct.get_run(cb.run_id)["status"] == "succeeded"
        assert s["loss"]["steps"] == list(range(1, 21)) and s["accuracy"]["steps"] == list(range(1, 21))
        assert s["train_loss"]["values"] == pytest.approx(h.history["loss"], rel=1e-6)
        assert seen["finish"] >= 3 and seen["metrics"] >= 6
    finally:
        flaky.close()
        proxy.close()
