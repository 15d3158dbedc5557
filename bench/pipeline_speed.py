"""Input pipeline: images/s of the engine's training loop against the seed's plain
`model.fit(numpy_arrays, batch_size=32)`, side by side in one process, medians of repeats.

    nice -n 5 .venv/bin/python bench/pipeline_speed.py --out bench/pipeline_speed.md

Each repeat trains a fresh seed CNN from the same initial weights both ways for `--epochs`
epochs; throughput is taken over the epochs after the first (the first one traces the graph
and fills the cache), accuracy on the full test split after the last epoch.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.engine import tfsetup  # noqa: E402, I001 - first: Keras 2 for tfmot
from worker.engine.tfsetup import keras  # noqa: E402

import numpy as np  # noqa: E402

from backend.spec import DatasetSpec, ModelSpec, RegularizationSpec, TrainingSpec  # noqa: E402
from worker.engine.callbacks import RunClock  # noqa: E402
from worker.engine.data import load_data  # noqa: E402
from worker.engine.models import build_model  # noqa: E402
from worker.engine.optimizers import make_loss, make_optimizer  # noqa: E402
from worker.engine.training import Arrays, fit_phase  # noqa: E402


class SilentReporter:
    def log_metrics(self, points): pass
    def progress(self, fraction, eta_seconds=None): pass
    def should_stop(self): return False
    def add_variant(self, variant): pass
    def log(self, message): pass


class EpochTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self._t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._t)

    def __init__(self):
        super().__init__()
        self.times: list[float] = []


def accuracy(model, x, y) -> float:
    return float((np.argmax(model.predict(x, batch_size=512, verbose=0), -1) == y).mean())


def seed_fit(model, data, args) -> tuple[float, float]:
    """The seed's loop: numpy arrays straight into fit."""
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    timer = EpochTimer()
    model.fit(data.x_train, data.y_train, batch_size=args.batch_size, epochs=args.epochs,
              verbose=0, callbacks=[timer])
    return len(data.x_train) / statistics.mean(timer.times[1:]), accuracy(model, data.x_test, data.y_test)


def engine_fit(model, data, args, *, xla: bool) -> tuple[float, float]:
    """The engine's loop: fit_phase with its tf.data pipeline and reporter callback."""
    training = TrainingSpec.model_validate({
        "epochs": args.epochs, "batch_size": args.batch_size, "seed": 0,
        "pipeline": {"steps_per_execution": args.steps_per_execution, "xla": xla}})
    timer = EpochTimer()
    fit_phase(model, Arrays(data.x_train, data.y_train), training=training, epochs=args.epochs,
              optimizer=make_optimizer(training.optimizer), loss=make_loss(data.classes, 0.0),
              metrics=["accuracy"], reporter=SilentReporter(),
              clock=RunClock(total_steps=1), callbacks=[timer])
    return len(data.x_train) / statistics.mean(timer.times[1:]), accuracy(model, data.x_test, data.y_test)


def main(args) -> None:
    data = load_data(DatasetSpec(name=args.dataset, validation_split=0.0, limit_train=args.limit_train),
                     lambda i: Path("/nonexistent"))
    results: dict[str, list[tuple[float, float]]] = {"seed": [], "engine": [], "engine+xla": []}
    for r in range(args.repeats):
        tfsetup.seed_everything(r)
        init = build_model(ModelSpec(), data.input_shape, data.classes, RegularizationSpec())
        weights = init.get_weights()
        ways = [("seed", lambda m: seed_fit(m, data, args)),
                ("engine", lambda m: engine_fit(m, data, args, xla=False))]
        if args.xla:
            ways.append(("engine+xla", lambda m: engine_fit(m, data, args, xla=True)))
        for name, fn in ways if r % 2 == 0 else list(reversed(ways)):  # alternate the order
            keras.backend.clear_session()
            tfsetup.seed_everything(r)
            model = build_model(ModelSpec(), data.input_shape, data.classes, RegularizationSpec())
            model.set_weights(weights)
            results[name].append(fn(model))
            print(f"repeat {r} {name}: {results[name][-1][0]:.0f} images/s, "
                  f"accuracy {results[name][-1][1]:.4f}", flush=True)
    # each repeat runs the loops back to back, so a per-repeat ratio cancels most of the
    # load other processes put on a shared machine; its median is the headline figure
    pair_ratios = {name: statistics.median(r[0] / s[0] for r, s in zip(rows, results["seed"], strict=True))
                   for name, rows in results.items() if rows}
    base_ips = statistics.median(x[0] for x in results["seed"])
    base_acc = statistics.median(x[1] for x in results["seed"])
    lines = ["| loop | images/s (median) | speed-up (ratio of medians) | speed-up (median of "
             "per-repeat ratios) | test accuracy (median) | Δ accuracy (points) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, rows in results.items():
        if not rows:
            continue
        ips, acc = statistics.median(x[0] for x in rows), statistics.median(x[1] for x in rows)
        lines.append(f"| {name} | {ips:.0f} | {ips / base_ips:.2f}× | {pair_ratios[name]:.2f}× | {acc:.4f} | "
                     f"{100 * (acc - base_acc):+.2f} |")
    lines += ["", f"{args.dataset}, {len(data.x_train)} training images, batch {args.batch_size}, "
              f"{args.epochs} epochs per run (throughput over epochs 2..{args.epochs}), "
              f"{args.repeats} repeats, steps_per_execution {args.steps_per_execution}; "
              f"per-repeat values: {results}"]
    text = "\n".join(lines)
    print(text)
    Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--limit-train", type=int, default=10000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps-per-execution", type=int,
                   default=TrainingSpec().pipeline.steps_per_execution, help="default: the spec's")
    p.add_argument("--xla", action="store_true", help="also time the engine loop with XLA")
    p.add_argument("--out", default="bench/pipeline_speed.md")
    main(p.parse_args())
