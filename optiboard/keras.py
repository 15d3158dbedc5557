"""`OptiboardCallback`: log any `model.fit` into an optiboard external run, the way
`mlflow.keras.autolog` or W&B's Keras callback do.

    import optiboard
    from optiboard.keras import OptiboardCallback

    cb = OptiboardCallback(optiboard.Client(url, token), run_name="my-cnn", experiment="mine")
    model.fit(x, y, epochs=3, callbacks=[cb])   # the run ends `succeeded` when fit returns
    cb.run_id                                   # the external run that holds the curves

It works with every Keras that runs on TensorFlow 2.21: Keras 3 (`import keras`, and
`tf.keras` by default) and tf-keras 2.21 (`import tf_keras`, and `tf.keras` with
TF_USE_LEGACY_KERAS=1). It subclasses neither: it implements the hooks both call (duck
typing, which both accept), so one object fits either Keras, and importing this module does
not import TensorFlow.

Points (step = global batch count, counting on across epochs, fits and resumed runs):
- every `log_every_n_batches` batches, per metric Keras reports, the mean over the batches
  since the previous point (Keras reports running means over the epoch; the difference of two
  running sums gives the interval's mean, as the optiboard worker logs its own runs). With
  `steps_per_execution` = k Keras calls back once per k batches; steps still count batches;
- at each epoch end: `train_<metric>` (Keras's epoch value), `val_*`, `lr`, `epoch`.

Points are live: the client's sender thread sends them at least every `flush_interval_s` (1 s)
and the callback hands them over at each epoch end, so the run's curves grow while `fit` runs.
The training thread never waits on the network, except at the very end: the final flush and
finish get at most `end_timeout_s` (the client's, 5 s by default), also when the run is ended
from `sys.excepthook` or at interpreter exit.

A logging problem never stops training, nor stalls the script: names the server refuses are stored under an accepted
form (`top@3` → `top_3`, one warning), values that are not numbers are skipped (one warning),
points the network could not take are kept and retried by the client, and failures at the end
are logged as one warning instead of raised (with a server that is away, after `end_timeout_s`:
the warning says how many points were not sent; the server ends the run `failed` after
OPTIBOARD_EXTERNAL_IDLE_TIMEOUT_S without data). When `fit` raises, the run ends `failed` with the
exception: inside `with cb:`, or for an uncaught exception through `sys.excepthook`
(IPython: after the failing cell), or when the process exits with the fit unfinished.
"""

from __future__ import annotations

import atexit
import logging
import math
import sys
import tempfile
import threading
import time
import traceback
import weakref
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from optiboard.client import TERMINAL, Client, count
from optiboard.errors import OptiboardError

log = logging.getLogger(__name__)

_MAX_VECTOR = 100  # a metric returning up to this many values is logged as key/0, key/1, ...


def _scalars(logs: Mapping[str, Any] | None, skipped: set[str]) -> dict[str, float]:
    """Keras logs → {key: float}. Scalars (Python, numpy, tensors) as they are; a small vector
    (e.g. F1Score(average=None)) as `key/i`; anything else is skipped with one warning."""
    out: dict[str, float] = {}
    for k, v in (logs or {}).items():
        try:
            out[k] = float(v)
            continue
        except (TypeError, ValueError):
            pass
        try:
            import numpy as np

            arr = np.asarray(v, dtype="float64").ravel()
        except Exception:
            arr = None
        if arr is not None and 0 < arr.size <= _MAX_VECTOR:
            out.update({f"{k}/{i}": float(x) for i, x in enumerate(arr)})
        elif k not in skipped:
            skipped.add(k)
            log.warning("optiboard: Keras metric %r is not a number (%s); it is not logged", k, type(v).__name__)
    return out


def _learning_rate(model: Any) -> float | None:
    """The optimizer's current learning rate, also when it is a schedule (both Kerases)."""
    opt = getattr(model, "optimizer", None)
    try:
        lr = getattr(opt, "learning_rate", None) if opt is not None else None
        if lr is None:
            return None
        if callable(lr) and not hasattr(lr, "numpy"):  # a LearningRateSchedule (tf-keras)
            lr = lr(getattr(opt, "iterations", 0))
        return float(lr.numpy() if hasattr(lr, "numpy") else lr)
    except Exception:  # an exotic optimizer: skip lr rather than break the user's training
        return None


# --- ending runs whose fit raised ---------------------------------------------------------

_active: weakref.WeakSet[OptiboardCallback] = weakref.WeakSet()
_hooks_lock = threading.Lock()
_hooks_installed = False


def _describe(exc_type: type[BaseException], exc: BaseException, tb: Any) -> str:
    tail = "".join(traceback.format_exception(exc_type, exc, tb)[-3:])
    return f"model.fit raised {exc_type.__name__}: {exc}\n{tail}"[:10_000]


def _end_active(reason: str) -> None:
    for cb in list(_active):
        cb._end("failed", reason)


def _install_hooks() -> None:
    global _hooks_installed
    with _hooks_lock:
        if _hooks_installed:
            return
        _hooks_installed = True
        previous = sys.excepthook

        def excepthook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
            try:
                _end_active(_describe(exc_type, exc, tb))
            finally:
                previous(exc_type, exc, tb)

        sys.excepthook = excepthook
        atexit.register(
            _end_active,
            "the process exited while model.fit was running "
            "(killed, interrupted, or its exception was caught and ignored)",
        )
        try:  # IPython/Jupyter do not call sys.excepthook: check after each cell instead
            ip = sys.modules["IPython"].get_ipython() if "IPython" in sys.modules else None
            if ip is not None:

                def post_run_cell(result: Any) -> None:
                    err = getattr(result, "error_in_exec", None)
                    if err is not None:
                        _end_active(_describe(type(err), err, err.__traceback__))

                ip.events.register("post_run_cell", post_run_cell)
        except Exception:  # pragma: no cover - an IPython without events
            pass


class OptiboardCallback:
    """Logs a Keras training into an external optiboard run and finishes it at train end.

    Args:
        client: an `optiboard.Client` (default: one from OPTIBOARD_URL / OPTIBOARD_TOKEN).
        run_id: log into this existing external run (resume). Its step counter continues after
            the last step the run holds, and epochs continue after its last `epoch` (or from
            `fit(initial_epoch=...)` when that is later). If the run has ended (terminal runs
            never change), a new run named "<name> (resumed from run N)" is created and
            continues its step counter; a warning says so.
        run_name, experiment, tags, extra_spec: of the run created at `on_train_begin` when
            `run_id` is None.
        log_every_n_batches: a batch point every N batches (rounded up to the next call
            boundary when `steps_per_execution` > 1).
        finish: end the run `succeeded` when fit returns (False: leave it running for more fits
            into the same run, then call `client.finish(cb.run_id)`; a fit that raises still
            ends it `failed`).
        end_timeout_s: the most (s) the end of `fit` (and ending the run from an exception or
            at interpreter exit) waits for the server to take the last points and the finish;
            default None: the client's `end_timeout_s` (5 s). After it the callback gives up
            with one warning saying how many points were not sent; the run stays `running`
            until the server ends it `failed` after OPTIBOARD_EXTERNAL_IDLE_TIMEOUT_S.
        upload_model: when fit returns, save the trained model (Keras v3 `.keras`) and upload it
            (POST /api/models: scanned, loaded in a sandbox, preflighted); `cb.model_id` is its
            id. Only a Sequential or Functional model can be uploaded (safe mode refuses
            subclassed code): a refusal is one warning.
        measure_on: with `upload_model`, also queue a run that measures the uploaded model on
            this dataset with the same harness as every optiboard run (a dataset name such as
            "fashion_mnist", or a DatasetSpec dict such as {"name": "upload", "upload_id": 3}),
            in the same experiment, so it lands on the Pareto chart; `cb.measure_run_id` is that
            run. `measure_spec` adds to its spec (exports, measurement, techniques, ...).
        upload_timeout_s: the most (s) the upload may take (the server checks the model first).

    No hook raises for a logging problem.

    Use `with cb: model.fit(...)` to end the run `failed` with the exception if fit raises
    even when the exception is caught by your code.
    """

    # What tf-keras's CallbackList reads from every callback (Keras 3 reads none of these).
    _supports_tf_logs = False
    _chief_worker_only = None

    def __init__(
        self,
        client: Client | None = None,
        *,
        run_id: int | None = None,
        run_name: str = "keras-fit",
        experiment: str = "default",
        tags: Sequence[str] = (),
        log_every_n_batches: int = 1,
        finish: bool = True,
        extra_spec: Mapping[str, Any] | None = None,
        end_timeout_s: float | None = None,
        upload_model: bool = False,
        measure_on: str | Mapping[str, Any] | None = None,
        measure_spec: Mapping[str, Any] | None = None,
        upload_timeout_s: float = 300.0,
    ) -> None:
        if measure_on is not None and not upload_model:
            raise ValueError("measure_on measures the uploaded final model: set upload_model=True as well")
        self.upload_model, self.measure_on = upload_model, measure_on
        self.measure_spec = dict(measure_spec or {})
        self.upload_timeout_s = float(upload_timeout_s)
        self.model_id: int | None = None  # the uploaded final model (upload_model=True)
        self.measure_run_id: int | None = None  # the run measuring it (measure_on)
        self.client = client or Client()
        self.end_timeout_s = max(0.0, float(self.client.end_timeout_s if end_timeout_s is None else end_timeout_s))
        self.run_id = run_id
        self.run_name, self.experiment, self.tags = run_name, experiment, list(tags)
        self.log_every = max(1, int(log_every_n_batches))
        self.finish_run = finish
        self.extra_spec = dict(extra_spec or {})
        self.model: Any = None
        self.params: dict[str, Any] = {}
        self.step = 0  # global batch step, counting on across epochs and fits
        self.epoch_offset = 0
        self.disabled = False  # the run could not be created: this fit is not logged
        self._resume_checked = run_id is None
        self._skipped: set[str] = set()
        self._epoch_start = 0
        self._logged_batches = 0  # batches of this epoch covered by logged points
        self._sums: dict[str, float] = {}
        self._seen_batches = 0
        self._running: dict[str, float] = {}
        # a call of unknown size held back (batches Keras claimed, its logs, the optimizer's
        # update count before it) and the update count after the last call taken
        self._pending: tuple[int, dict[str, float], int | None] | None = None
        self._iterations_mark: int | None = None
        self._warned_send = False
        self._last_epoch = 0  # the last `epoch` value logged into the run
        self._shift: int | None = None

    # --- the protocol both Kerases call ---------------------------------------------------

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: Mapping[str, Any]) -> None:
        self.params = dict(params or {})

    def _implements_train_batch_hooks(self) -> bool:
        return True

    def _implements_test_batch_hooks(self) -> bool:
        return False

    def _implements_predict_batch_hooks(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        # every other hook either Keras may call (on_test_begin, on_predict_batch_end, ...)
        if name.startswith("on_"):
            return _nothing
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # --- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> OptiboardCallback:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None and self in _active:
            self._end("failed", _describe(exc_type, exc, tb))

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        self.disabled = False
        self._shift = None
        try:
            if self.run_id is None:
                self._create_run()
            elif not self._resume_checked:
                self._resume()
        except Exception as e:  # any logging problem: training goes on, unlogged
            self.disabled = True
            log.warning("optiboard: cannot reach the run (%s: %s); this model.fit is not logged", type(e).__name__, e)
            return
        self._resume_checked = True
        _install_hooks()
        _active.add(self)

    def _create_run(self, *, notes: str = "") -> None:
        try:
            notes = notes or f"{self.model.name}: {self.model.count_params()} parameters"
        except Exception:  # a subclassed model not built yet
            pass
        run = self.client.create_external_run(
            self.run_name, experiment=self.experiment, tags=self.tags, notes=notes, spec=self.extra_spec
        )
        self.run_id = int(run["id"])
        log.info("logging model.fit into optiboard run %s", self.run_id)

    def _resume(self) -> None:
        """Continue an existing run: its step counter and epoch count go on where it stopped."""
        assert self.run_id is not None
        try:
            run = self.client.get_run(self.run_id)
        except OptiboardError as e:
            if e.status != 404:
                raise
            missing, self.run_id = self.run_id, None
            self._create_run(notes=f"run {missing} to resume was not found")
            log.warning("optiboard: run %s to resume does not exist; logging into new run %s", missing, self.run_id)
            return
        last = self.client.last_step(self.run_id)
        epochs = self.client.metrics(self.run_id, keys=["epoch"], max_points=4).get("epoch", {})
        last_epoch = int(max((v for v in epochs.get("values", []) if v == v), default=0))
        self.step = max(self.step, last, 0)  # steps count batches: `last` batches are done
        self._last_epoch = max(self._last_epoch, last_epoch)
        if run["status"] in TERMINAL or not run.get("external", False):
            old = self.run_id
            why = f"it is {run['status']}" if run["status"] in TERMINAL else "it is trained by a worker"
            self.run_name = f"{run['name']} (resumed from run {old})"
            self.experiment = run.get("experiment", self.experiment) or self.experiment
            self.run_id = None
            self._create_run(notes=f"continues run {old} from step {self.step}")
            log.warning(
                "optiboard: run %s cannot take more points (%s); logging into new run %s, continuing from step %d",
                old,
                why,
                self.run_id,
                self.step,
            )

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        if self.disabled or self.run_id is None:
            return
        self._safe(self._emit_interval)
        if self.finish_run:
            self._end("succeeded", None)
            self._upload_final_model()
        else:
            _active.discard(self)
            try:
                self.client.flush(self.run_id, timeout_s=self.end_timeout_s)
            except Exception as e:  # noqa: BLE001 - a logging problem never reaches the user's code
                log.warning(
                    "optiboard: %s of run %s not sent within %g s (end_timeout_s): %s; they stay buffered and "
                    "the client keeps retrying in the background",
                    count(self.client.unsent(self.run_id), "metric point"),
                    self.run_id,
                    self.end_timeout_s,
                    e,
                )

    def _upload_final_model(self) -> None:
        """upload_model / measure_on: never raises; a problem is one warning."""
        if not self.upload_model or self.model is None:
            return
        try:
            with tempfile.TemporaryDirectory(prefix="optiboard-final-") as folder:
                path = Path(folder) / "final.keras"
                _save_keras_v3(self.model, path)
                uploaded = self.client.upload_model(
                    path, name=f"{self.run_name} · final model of run {self.run_id}", timeout=self.upload_timeout_s
                )
            self.model_id = int(uploaded["id"])
            log.info("optiboard: the final model of run %s is uploaded as model %s", self.run_id, self.model_id)
            if self.measure_on is None:
                return
            dataset = {"name": self.measure_on} if isinstance(self.measure_on, str) else dict(self.measure_on)
            spec: dict[str, Any] = {
                "name": f"{self.run_name} · final model",
                "experiment": self.experiment,
                "dataset": dataset,
                "tags": [*self.tags, "final-model"][:32],
                "notes": f"The final model of external run {self.run_id}, uploaded by its Keras callback "
                f"as model {self.model_id} and measured by the optiboard harness.",
                **self.measure_spec,
            }
            self.measure_run_id = int(self.client.optimize_model(self.model_id, spec)["id"])
            log.info("optiboard: run %s measures the final model of run %s", self.measure_run_id, self.run_id)
        except Exception as e:  # noqa: BLE001 - a logging problem never reaches the user's code
            log.warning(
                "optiboard: the final model of run %s was %s (%s: %s); the run's curves are kept",
                self.run_id,
                "uploaded but not measured" if self.model_id is not None else "not uploaded",
                type(e).__name__,
                e,
            )

    def fail(self, error: str) -> None:
        """Mark the run failed (call it from your `except` around model.fit)."""
        self._end("failed", error[:10_000])

    def _end(self, status: str, error: str | None) -> None:
        """Flush and finish within `end_timeout_s` in all; never raises. Whatever goes wrong
        ends in one warning that says what was lost and what becomes of the run."""
        _active.discard(self)
        if self.run_id is None or self.disabled:
            return
        if self._pending is not None:  # fit raised after a call of unknown size was held back
            self._safe(self._settle_pending)
        rid, client, budget = self.run_id, self.client, self.end_timeout_s
        deadline = time.monotonic() + budget

        def left() -> float:
            return max(0.0, deadline - time.monotonic())

        unsent, problem = 0, None
        try:
            client.flush(rid, timeout_s=0.8 * budget)  # the rest is for the finish
        except Exception as e:  # noqa: BLE001 - a logging problem never reaches the user's code
            unsent, problem = client.unsent(rid), e
        try:
            if problem is None:
                try:
                    client.finish(rid, status, error=error, timeout_s=left())
                    return
                except OptiboardError as e:
                    if e.status is None or e.status >= 500:  # the server is away: give up below
                        raise
                    problem = e  # refused, e.g. 409: someone else ended the run
            # points could not be sent: still end the run, saying how many are missing
            run = client.get_run(rid, timeout_s=left())
            if run["status"] in TERMINAL:
                client.discard(rid)
                log.warning("optiboard: run %s had already ended %s; %s", rid, run["status"], problem)
                return
            note = f"{count(unsent, 'metric point')} could not be sent: {problem}" if unsent else str(problem)
            client.discard(rid)  # else finish() would try to send them again first
            client.finish(rid, status, error=f"{error}\n{note}" if error else note, timeout_s=left())
            log.warning("optiboard: run %s ended %s; %s", rid, status, note)
        except Exception as last:  # noqa: BLE001
            unsent = client.discard(rid) or unsent
            lost = f"{count(unsent, 'metric point')} not sent" if unsent else "every metric point was sent"
            log.warning(
                "optiboard: could not end run %s as %s within %g s (end_timeout_s): %s; %s. The run stays "
                "`running` until the server ends it `failed` after OPTIBOARD_EXTERNAL_IDLE_TIMEOUT_S without "
                "data (1 h by default)",
                rid,
                status,
                budget,
                last,
                lost,
            )

    def _safe(self, fn: Any) -> None:
        try:
            fn()
        except Exception as e:  # whatever goes wrong in logging, training goes on
            if not self._warned_send:
                self._warned_send = True
                log.warning(
                    "optiboard: logging into run %s failed (%s); training goes on, unsent points are kept and retried",
                    self.run_id,
                    e,
                )

    # --- points ---------------------------------------------------------------------------

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        # Keras' batch logs are running means over the epoch: restart the interval with it.
        self._epoch_start = self.step
        self._logged_batches = self._seen_batches = 0
        self._sums, self._running = {}, {}
        self._pending = None
        steps = self.params.get("steps")
        self._iterations_mark = None if isinstance(steps, int) and steps > 0 else self._iterations()

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self.disabled or self.run_id is None:
            return
        # With steps_per_execution = k, `batch` is the index of the last batch of the k just
        # run; Keras 3 may pass an index past the epoch's end for its last, partial call.
        batches = int(batch) + 1
        steps = self.params.get("steps")
        if isinstance(steps, int) and steps > 0:
            batches = min(batches, steps)
        elif batches - self._pending_or_seen() > 1:
            # Data of unknown length (a generator, a filtered tf.data.Dataset) with
            # steps_per_execution > 1: nobody knows yet whether this call was the epoch's last,
            # partial one (Keras 3 then reports a full call: batch 11 for 10 batches in calls of
            # 4). The previous call was full; this one waits for the next call or the epoch end.
            self._settle_pending()
            self._pending = (batches, _scalars(logs, self._skipped), self._iterations_mark)
            self._iterations_mark = self._iterations()
            return
        self._settle_pending()
        self._take(batches, _scalars(logs, self._skipped))

    def _pending_or_seen(self) -> int:
        return self._pending[0] if self._pending is not None else self._seen_batches

    def _iterations(self) -> int | None:
        """The optimizer's update count (both Kerases), or None."""
        try:
            it = self.model.optimizer.iterations
            return int(it.numpy() if hasattr(it, "numpy") else it)
        except Exception:  # no optimizer, or an exotic one: counts stay as Keras reports them
            return None

    def _settle_pending(self, *, last: bool = False) -> None:
        """Take the call held back by on_train_batch_end. At the epoch end (`last`) it may have
        been partial: the optimizer's update count over that call says how many batches it ran
        (when it is between 1 and the batches Keras claimed; a skipped mixed-precision update
        in that very call would undercount it)."""
        if self._pending is None:
            return
        batches, running, mark = self._pending
        self._pending = None
        if last and mark is not None and (now := self._iterations()) is not None:
            ran = now - mark
            if 1 <= ran < batches - self._seen_batches:
                batches = self._seen_batches + ran
        self._take(batches, running)

    def _take(self, batches: int, running: dict[str, float]) -> None:
        if batches <= self._seen_batches:  # pragma: no cover - Keras never repeats a batch
            return
        crossed = batches // self.log_every > self._seen_batches // self.log_every
        self._seen_batches = batches
        self.step = self._epoch_start + batches
        self._running = running
        if crossed:
            self._safe(self._emit_interval)

    def _emit_interval(self) -> None:
        """One point per metric: the mean over the batches since the last point, from Keras'
        running epoch means (running sum now minus running sum at the last point, divided by
        the batches between; NaN/inf pass through, and a sum too large for float precision
        falls back to the running mean itself, as the worker does)."""
        n = self._seen_batches - self._logged_batches
        if n <= 0 or self.run_id is None:
            return
        values = {}
        for k, mean in self._running.items():
            total = mean * self._seen_batches
            value = (total - self._sums.get(k, 0.0)) / n
            if not math.isfinite(value) or abs(total) >= 1e6:
                value = mean
            values[k] = value
            self._sums[k] = total
        self._logged_batches = self._seen_batches
        self.client.log_metrics(self.run_id, values, step=self.step)

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        if self.disabled or self.run_id is None:
            return
        self._settle_pending(last=True)
        self._safe(self._emit_interval)
        if self._shift is None:
            # epochs continue the run's count: after a resume without initial_epoch, or a
            # second fit with the same callback, Keras counts from 0 again
            self._shift = max(0, self._last_epoch - int(epoch))
        number = int(epoch) + 1 + self._shift
        self._last_epoch = number
        values: dict[str, float] = {"epoch": float(number)}
        for k, v in _scalars(logs, self._skipped).items():
            values[k if k.startswith("val_") or k in ("lr", "learning_rate") else f"train_{k}"] = v
        if "learning_rate" in values:  # Keras 3 puts the rate in the epoch logs under this name
            values["lr"] = values.pop("learning_rate")
        lr = _learning_rate(self.model)
        if lr is not None and "lr" not in values:
            values["lr"] = lr
        self._safe(lambda: self.client.log_metrics(self.run_id, values, step=self.step))
        self._safe(lambda: self.client.flush(self.run_id, wait=False))  # live curves; never waits


def _save_keras_v3(model: Any, path: Path) -> None:
    """Save `model` (Keras 3 or tf-keras) in the Keras v3 format (a zip: the only format the
    server loads, in safe mode). tf-keras chooses the format from a thread-local flag unless told
    (worker.engine.models.save_keras_model says why), so it is told."""
    if type(model).__module__.startswith("tf_keras"):
        model.save(path, save_format="keras_v3")
    else:
        model.save(path)
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{type(model).__name__}.save wrote no Keras v3 file")


def _nothing(*args: Any, **kwargs: Any) -> None:
    return None
