"""The engine's fused Adam/AdamW follow Keras's own update step for step."""

from __future__ import annotations

import numpy as np
import pytest

from runspec.spec import OptimizerSpec
from worker.engine import tfsetup
from worker.engine.optimizers import FusedAdam, FusedAdamW, make_optimizer
from worker.engine.tfsetup import keras, tf


def _train(optimizer: keras.optimizers.Optimizer, steps: int = 30) -> list[np.ndarray]:
    """A small regression fitted with `optimizer` from fixed weights; the final weights."""
    tfsetup.seed_everything(1)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)])
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 6)).astype("float32"), rng.normal(size=(64, 1)).astype("float32")
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(x, y, batch_size=16, epochs=steps // 4, shuffle=False, verbose=0)
    return model.get_weights()


@pytest.mark.parametrize(
    ("fused", "plain"),
    [
        (lambda: FusedAdam(0.01), lambda: keras.optimizers.Adam(0.01)),
        (lambda: FusedAdam(0.01, clipnorm=0.1), lambda: keras.optimizers.Adam(0.01, clipnorm=0.1)),
        (lambda: FusedAdamW(0.01, weight_decay=0.05), lambda: keras.optimizers.AdamW(0.01, weight_decay=0.05)),
        (lambda: FusedAdam(0.01, amsgrad=True), lambda: keras.optimizers.Adam(0.01, amsgrad=True)),
    ],
)
def test_fused_step_matches_keras(fused, plain) -> None:
    got, want = _train(fused()), _train(plain())
    start = _train(keras.optimizers.SGD(0.0))  # no update at all: the weights must have moved
    for g, w, s in zip(got, want, start, strict=True):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6)
        assert not np.allclose(g, s)


def test_fused_step_runs_the_one_kernel() -> None:
    """The dense update is ResourceApplyAdam in the traced step, not Keras's element-wise ops."""
    var = tf.Variable(np.ones((4, 4), "float32"))
    opt = FusedAdam(0.1)
    step = tf.function(lambda g: opt.apply_gradients([(g, var)]))
    graph = step.get_concrete_function(tf.TensorSpec((4, 4), tf.float32)).graph
    ops = {op.type for op in graph.get_operations()}
    assert "ResourceApplyAdam" in ops and "Sqrt" not in ops


def test_make_optimizer_uses_the_fused_step_for_adam_only() -> None:
    assert isinstance(make_optimizer(OptimizerSpec(name="adam")), FusedAdam)
    assert isinstance(make_optimizer(OptimizerSpec(name="adamw", weight_decay=0.01)), FusedAdamW)
    assert not isinstance(make_optimizer(OptimizerSpec(name="sgd")), FusedAdam)
