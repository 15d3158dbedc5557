"""`OptiboardCallback`: log any `model.fit` into an optiboard external run, the way
`mlflow.keras.autolog` or W&B's Keras callback do.

    import optiboard
    from optiboard.keras import OptiboardCallback

    cb = OptiboardCallback(optiboard.Client(url, token), run_name="my-cnn", experiment="mine")
    model.fit(x, y, epochs=3, callbacks=[cb])   # the run ends `succeeded` when fit returns
    cb.run_id                                   # the external run that holds the curves

Batch points (every `log_every_n_batches` batches, the mean of each metric over those batches,
as the worker logs them): `loss`, `accuracy`, ... Epoch points, at the global batch step:
`train_loss`, `train_accuracy`, `val_*`, `lr`, `epoch`. Points go out in batches through the
client's buffer, not one request per point.

This module imports TensorFlow (it subclasses `tf.keras.callbacks.Callback`, which is tf-keras
when TF_USE_LEGACY_KERAS=1 and Keras 3 otherwise); `import optiboard` alone does not.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import tensorflow as tf

from optiboard.client import Client

log = logging.getLogger(__name__)


def _float(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _learning_rate(model: Any) -> float | None:
    """The optimizer's current learning rate, also when it is a schedule."""
    opt = getattr(model, "optimizer", None)
    lr = getattr(opt, "learning_rate", None) if opt is not None else None
    if lr is None:
        return None
    try:
        if callable(lr) and not hasattr(lr, "numpy"):  # a LearningRateSchedule
            lr = lr(opt.iterations)
        return float(tf.keras.backend.get_value(lr))
    except Exception:  # an exotic optimizer: skip lr rather than break the user's training
        return None


class OptiboardCallback(tf.keras.callbacks.Callback):
    """Logs a Keras training into an external optiboard run and finishes it at train end.

    Pass `run_id` to log into an existing external run; otherwise one is created at
    `on_train_begin` with `run_name`, `experiment` and `tags`. With `finish=False` the run stays
    running (several fits into one run; call `client.finish(cb.run_id)` yourself).
    """

    def __init__(self, client: Client | None = None, *, run_id: int | None = None,
                 run_name: str = "keras-fit", experiment: str = "default",
                 tags: Sequence[str] = (), log_every_n_batches: int = 1, finish: bool = True,
                 extra_spec: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.client = client or Client()
        self.run_id = run_id
        self.run_name, self.experiment, self.tags = run_name, experiment, list(tags)
        self.log_every = max(1, int(log_every_n_batches))
        self.finish_run = finish
        self.extra_spec = dict(extra_spec or {})
        self.step = 0  # global batch step, counting on across epochs and fits
        self._sums: dict[str, float] = {}
        self._running: dict[str, float] = {}
        self._batches = 0
        self._epoch_batches = 0

    # --- lifecycle ------------------------------------------------------------------------

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        if self.run_id is None:
            notes = ""
            try:
                notes = f"{self.model.name}: {self.model.count_params()} parameters"
            except Exception:  # a subclassed model not built yet
                pass
            run = self.client.create_external_run(self.run_name, experiment=self.experiment,
                                                  tags=self.tags, notes=notes, spec=self.extra_spec)
            self.run_id = int(run["id"])
            log.info("logging model.fit into optiboard run %s", self.run_id)

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        assert self.run_id is not None
        self._emit_interval()
        if self.finish_run:
            self.client.finish(self.run_id, "succeeded")
        else:
            self.client.flush(self.run_id)

    def fail(self, error: str) -> None:
        """Mark the run failed (call it from your `except` around model.fit)."""
        if self.run_id is not None:
            self.client.finish(self.run_id, "failed", error=error[:10_000])

    # --- points ---------------------------------------------------------------------------

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        # Keras' batch logs are running means over the epoch: restart the interval with it.
        self._sums, self._batches, self._epoch_batches = {}, 0, 0

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        self.step += 1
        self._epoch_batches = batch + 1
        self._running = {k: f for k, v in (logs or {}).items() if (f := _float(v)) is not None}
        self._batches += 1
        if self._batches >= self.log_every:
            self._emit_interval()

    def _emit_interval(self) -> None:
        """One point per metric: the mean over the batches since the last point, from Keras'
        running epoch means (sum so far minus sum at the last point)."""
        if not self._batches or self.run_id is None:
            return
        n_total = self._epoch_batches
        values = {}
        for k, mean in self._running.items():
            total = mean * n_total
            prev = self._sums.get(k, 0.0)
            values[k] = (total - prev) / self._batches if math.isfinite(total) else total
            self._sums[k] = total
        self.client.log_metrics(self.run_id, values, step=self.step)
        self._batches = 0

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self.run_id is None:
            return
        self._emit_interval()
        values: dict[str, float] = {"epoch": float(epoch + 1)}
        for k, v in (logs or {}).items():
            f = _float(v)
            if f is None:
                continue
            values[k if k.startswith("val_") or k == "lr" else f"train_{k}"] = f
        lr = _learning_rate(self.model)
        if lr is not None and "lr" not in values:
            values["lr"] = lr
        self.client.log_metrics(self.run_id, values, step=self.step)
