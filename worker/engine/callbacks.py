"""The Keras callback that streams training progress to the Reporter."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from worker.engine.contract import Cancelled, Reporter, TrainingDiverged
from worker.engine.tfsetup import keras

HEARTBEAT_SECONDS = 5.0


@dataclass
class RunClock:
    """Shared by every training phase of a job: the global step keeps counting across
    phases so the curves of fine-tuning continue those of the base training."""

    total_steps: int
    step: int = 0
    epochs_done: int = 0
    train_seconds: float = 0.0
    stopped_early: bool = False
    started: float = field(default_factory=time.monotonic)
    # training is this share of the whole job's progress; export and measurement the rest
    train_share: float = 0.85

    def fraction(self) -> float:
        return min(1.0, self.train_share * self.step / max(self.total_steps, 1))

    def eta(self) -> float | None:
        done = self.fraction()
        if done <= 0:
            return None
        return (time.monotonic() - self.started) * (1 - done) / done


def _value(x) -> float:
    return float(x)


class ReporterCallback(keras.callbacks.Callback):
    """Logs `loss`/`accuracy` every `log_every` batches (mean over the batches since the last
    point), epoch metrics at each epoch end, sends progress as heartbeat, and stops the job
    when the reporter says so (Cancelled) or the loss is no longer finite (TrainingDiverged).
    Non-finite values are logged as they are before raising."""

    def __init__(self, reporter: Reporter, clock: RunClock, log_every: int, steps_per_epoch: int):
        super().__init__()
        self.reporter, self.clock, self.log_every = reporter, clock, log_every
        self.steps_per_epoch = steps_per_epoch
        self._epoch_start = 0
        self._last_logged_batches = 0  # batches of this epoch covered by logged points
        self._last_loss_sum = 0.0
        self._last_acc_sum = 0.0
        self._last_beat = time.monotonic()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch_start = self.clock.step
        self._last_logged_batches = 0
        self._last_loss_sum = self._last_acc_sum = 0.0

    def _flush_interval(self, batches: int, logs: dict) -> None:
        """One point with the mean loss/accuracy over the batches since the last point.
        Keras logs running means over the epoch; their difference gives the interval mean."""
        n = batches - self._last_logged_batches
        if n <= 0:
            return
        mean_loss = _value(logs.get("loss", math.nan))
        loss_sum = mean_loss * batches
        acc_sum = _value(logs.get("accuracy", math.nan)) * batches
        step = self._epoch_start + batches
        loss = (loss_sum - self._last_loss_sum) / n
        if not (math.isfinite(loss) and 0 <= loss and abs(loss_sum) < 1e6):
            # NaN/inf pass through as they are; huge sums lose float32 precision, so the
            # epoch's running mean is the honest value there
            loss = mean_loss
        self.reporter.log_metrics(
            [
                ("loss", step, loss),
                ("accuracy", step, (acc_sum - self._last_acc_sum) / n),
            ]
        )
        self._last_logged_batches = batches
        self._last_loss_sum, self._last_acc_sum = loss_sum, acc_sum

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        batches = batch + 1  # with steps_per_execution, `batch` is the last batch run
        prev = self.clock.step
        self.clock.step = self._epoch_start + batches
        crossed = self.clock.step // self.log_every > prev // self.log_every
        loss = _value(logs.get("loss", 0.0))
        if not math.isfinite(loss):
            self._flush_interval(batches, logs)
            raise TrainingDiverged(
                f"training diverged (loss is {loss}) at step {self.clock.step}; "
                "lower the learning rate or enable gradient clipping"
            )
        if self.reporter.should_stop():
            self._flush_interval(batches, logs)
            raise Cancelled(f"cancelled at step {self.clock.step}")
        now = time.monotonic()
        if crossed:
            self._flush_interval(batches, logs)
        if crossed or now - self._last_beat > HEARTBEAT_SECONDS:
            self.reporter.progress(self.clock.fraction(), self.clock.eta())
            self._last_beat = now

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        self.clock.epochs_done += 1
        step = self.clock.step
        self._flush_interval(step - self._epoch_start, logs)  # the epoch's last partial interval
        lr = _value(keras.backend.get_value(self.model.optimizer.learning_rate))
        points = [
            ("train_loss", step, _value(logs.get("loss", math.nan))),
            ("train_accuracy", step, _value(logs.get("accuracy", math.nan))),
            ("lr", step, lr),
            ("epoch", step, float(self.clock.epochs_done)),
        ]
        if "val_loss" in logs:
            points.append(("val_loss", step, _value(logs["val_loss"])))
            points.append(("val_accuracy", step, _value(logs.get("val_accuracy", math.nan))))
        self.reporter.log_metrics(points)
        val = (
            f", val_loss {logs['val_loss']:.4f}, val_accuracy {logs.get('val_accuracy', math.nan):.4f}"
            if "val_loss" in logs
            else ""
        )
        self.reporter.log(
            f"epoch {self.clock.epochs_done}: loss {logs.get('loss', math.nan):.4f}, "
            f"accuracy {logs.get('accuracy', math.nan):.4f}{val}, lr {lr:.3g}"
        )
        self.reporter.progress(self.clock.fraction(), self.clock.eta())
        self._last_beat = time.monotonic()
