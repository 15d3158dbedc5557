"""Input pipeline: images/s of the engine's training loop against the seed's plain
`model.fit(numpy_arrays, batch_size=32)`, medians of alternating repeats.

    nice -n 5 .venv/bin/python bench/pipeline_speed.py --out bench/results/pipeline_speed.md

Every side runs in its own fresh process, because the engine applies process-level TensorFlow
settings (`worker.engine.tfsetup`, e.g. oneDNN kernels) that must not leak into the seed:

- `seed`: a process that never imports the engine. It sets only TF_USE_LEGACY_KERAS=1 (the
  seed model is a tf_keras model), removes every TF_ENABLE_ONEDNN_OPTS / OMP / threading
  variable from its environment, loads the model file and calls
  `model.fit(x, y, batch_size=32)` with Keras' defaults (Adam 1e-3, from-logits cross-entropy,
  the accuracy metric).
- `engine`: a process that imports `worker.engine.tfsetup` first (as the worker does) and
  trains through `fit_phase` with the spec's default PipelineSpec.
- `engine+xla` (`--xla`): the same with `pipeline.xla`.
- `engine+mixed` (`--mixed-precision`): the same with `pipeline.mixed_precision`, the model
  cast by `precision.for_training` as `run_job` does (bfloat16 compute on a CPU with
  AVX512_BF16 or AMX, float32 elsewhere; the result records the policy).
- `seed+engine-tf` (`--seed-with-engine-tf`): the seed's plain fit in a process with the
  engine's TF settings; it shows how much of the gain is the process settings and how much
  the loop.

A prepare process loads the data once and saves, per repeat, the same initial model for all
sides. Each repeat runs the sides back to back, the order alternating between repeats.
Throughput is taken over the epochs after the first (the first traces the graph and fills
the cache); accuracy on the full test split after the last epoch. CPU seconds per 1000
images (process time) are recorded next to the wall-clock rate: on a shared machine they
show the work done, independent of how much of the CPU the process got.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SEED_ENV_DROP = (
    "TF_ENABLE_ONEDNN_OPTS",
    "OMP_NUM_THREADS",
    "KMP_AFFINITY",
    "KMP_BLOCKTIME",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "TF_XLA_FLAGS",
)


# --- children ---------------------------------------------------------------------------


def _epoch_timer(keras):
    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.wall: list[float] = []
            self.cpu: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self._t, self._c = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            self.wall.append(time.perf_counter() - self._t)
            self.cpu.append(time.process_time() - self._c)

    return EpochTimer()


def _result(keras, np, model, timer, d, seconds_to_first_epoch: float) -> dict:
    n = len(d["x_train"])
    wall, cpu = sum(timer.wall[1:]), sum(timer.cpu[1:])
    pred = np.argmax(model.predict(d["x_test"], batch_size=512, verbose=0), -1)
    return {
        "images_per_s": n * len(timer.wall[1:]) / wall,
        "cpu_s_per_1000": 1000 * cpu / (n * len(timer.wall[1:])),
        "accuracy": float((pred == d["y_test"]).mean()),
        "epoch_wall_s": timer.wall,
        "first_epoch_s": seconds_to_first_epoch,
        "onednn_env": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset"),
    }


def child_seed(args) -> dict:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf  # noqa: F401 - the default TF of this machine
    import tf_keras as keras

    d = np.load(args.data)
    keras.utils.set_random_seed(args.repeat)
    model = keras.models.load_model(args.model, compile=False)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    timer = _epoch_timer(keras)
    t = time.perf_counter()
    model.fit(d["x_train"], d["y_train"], batch_size=args.batch_size, epochs=args.epochs, verbose=0, callbacks=[timer])
    return _result(keras, np, model, timer, d, time.perf_counter() - t - sum(timer.wall[1:]))


def child_engine(args) -> dict:
    sys.path.insert(0, str(REPO))
    from worker.engine import tfsetup  # noqa: I001 - first, as in the worker
    from worker.engine.tfsetup import keras
    import numpy as np

    from runspec.spec import TrainingSpec
    from worker.engine.callbacks import RunClock
    from worker.engine.optimizers import make_loss, make_optimizer
    from worker.engine.training import Arrays, fit_phase

    class SilentReporter:
        def log_metrics(self, points):
            pass

        def progress(self, fraction, eta_seconds=None):
            pass

        def should_stop(self):
            return False

        def add_variant(self, variant):
            pass

        def log(self, message):
            pass

    d = np.load(args.data)
    tfsetup.seed_everything(args.repeat)
    model = keras.models.load_model(args.model, compile=False)
    pipeline = {"xla": True} if args.xla else {}
    policy = "float32"
    if args.mixed_precision:
        from worker.engine.precision import for_training

        pipeline["mixed_precision"] = True
        model, policy, _ = for_training(model, True)
    if args.steps_per_execution:
        pipeline["steps_per_execution"] = args.steps_per_execution
    training = TrainingSpec.model_validate(
        {"epochs": args.epochs, "batch_size": args.batch_size, "seed": args.repeat, "pipeline": pipeline}
    )
    timer = _epoch_timer(keras)
    t = time.perf_counter()
    fit_phase(
        model,
        Arrays(d["x_train"], d["y_train"]),
        training=training,
        epochs=args.epochs,
        optimizer=make_optimizer(training.optimizer),
        loss=make_loss(int(d["classes"]), 0.0),
        metrics=["accuracy"],
        reporter=SilentReporter(),
        clock=RunClock(total_steps=1),
        callbacks=[timer],
    )
    out = _result(keras, np, model, timer, d, time.perf_counter() - t - sum(timer.wall[1:]))
    out["pipeline"] = training.pipeline.model_dump()
    out["policy"] = policy
    return out


def child_prepare(args) -> dict:
    """Data to an .npz and one initial model per repeat, shared by every side."""
    sys.path.insert(0, str(REPO))
    from worker.engine import tfsetup  # noqa: I001
    import numpy as np

    from runspec.spec import DatasetSpec, ModelSpec, RegularizationSpec
    from worker.engine.data import load_data
    from worker.engine.models import build_model

    data = load_data(
        DatasetSpec(name=args.dataset, validation_split=0.0, limit_train=args.limit_train),
        lambda i: Path("/nonexistent"),
    )
    out = Path(args.workdir)
    np.savez(
        out / "data.npz",
        x_train=data.x_train,
        y_train=data.y_train,
        x_test=data.x_test,
        y_test=data.y_test,
        classes=data.classes,
    )
    for r in range(args.repeats):
        tfsetup.seed_everything(r)
        build_model(ModelSpec(), data.input_shape, data.classes, RegularizationSpec()).save(out / f"init{r}.keras")
    return {"train": len(data.x_train), "test": len(data.x_test)}


# --- parent -----------------------------------------------------------------------------


def run_child(mode: str, args, repeat: int, workdir: Path, *, engine_tf: bool) -> dict:
    env = dict(os.environ)
    if not engine_tf:
        for k in SEED_ENV_DROP:
            env.pop(k, None)
    loop = "seed" if mode.startswith("seed") else "engine"
    cmd = [
        sys.executable,
        __file__,
        "--child",
        loop if mode != "prepare" else "prepare",
        "--data",
        str(workdir / "data.npz"),
        "--model",
        str(workdir / f"init{repeat}.keras"),
        "--repeat",
        str(repeat),
        "--dataset",
        args.dataset,
        "--limit-train",
        str(args.limit_train),
        "--batch-size",
        str(args.batch_size),
        "--epochs",
        str(args.epochs),
        "--repeats",
        str(args.repeats),
        "--workdir",
        str(workdir),
    ]
    if args.steps_per_execution:
        cmd += ["--steps-per-execution", str(args.steps_per_execution)]
    if mode == "engine+xla":
        cmd.append("--xla")
    if mode == "engine+mixed":
        cmd.append("--mixed-precision")
    if mode == "seed+engine-tf":
        cmd.append("--engine-tf")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{mode} child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def summarise(results: dict[str, list[dict]]) -> tuple[list[str], dict]:
    seed = results["seed"]
    base_ips = statistics.median(x["images_per_s"] for x in seed)
    base_acc = statistics.median(x["accuracy"] for x in seed)
    lines = [
        "| loop | process | images/s (median) | speed-up (ratio of medians) | speed-up (median "
        "of per-repeat ratios) | CPU s / 1000 images (median) | test accuracy (median) | "
        "Δ accuracy (points) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    summary = {}
    for name, rows in results.items():
        if not rows:
            continue
        ips = statistics.median(x["images_per_s"] for x in rows)
        acc = statistics.median(x["accuracy"] for x in rows)
        cpu = statistics.median(x["cpu_s_per_1000"] for x in rows)
        pair = statistics.median(r["images_per_s"] / s["images_per_s"] for r, s in zip(rows, seed, strict=True))
        policy = rows[0].get("policy", "float32")
        proc = (
            "TF defaults" if name == "seed" else "engine TF settings" + ("" if policy == "float32" else f", {policy}")
        )
        summary[name] = {
            "images_per_s": ips,
            "ratio_of_medians": ips / base_ips,
            "median_pair_ratio": pair,
            "cpu_s_per_1000": cpu,
            "accuracy": acc,
            "delta_accuracy_points": 100 * (acc - base_acc),
        }
        lines.append(
            f"| {name} | {proc} | {ips:.0f} | {ips / base_ips:.2f}× | {pair:.2f}× | "
            f"{cpu:.3f} | {acc:.4f} | {100 * (acc - base_acc):+.2f} |"
        )
    return lines, summary


def main(args) -> None:
    sys.path.insert(0, str(REPO))
    from bench.harness import machine

    sides = (
        ["seed", "engine"]
        + (["engine+xla"] if args.xla else [])
        + (["engine+mixed"] if args.mixed_precision else [])
        + (["seed+engine-tf"] if args.seed_with_engine_tf else [])
    )
    results: dict[str, list[dict]] = {s: [] for s in sides}
    started = time.time()
    host = machine()
    with tempfile.TemporaryDirectory(prefix="pipeline_speed_") as tmp:
        workdir = Path(tmp)
        info = run_child("prepare", args, 0, workdir, engine_tf=True)
        for r in range(args.repeats):
            for name in sides if r % 2 == 0 else list(reversed(sides)):  # alternate the order
                res = run_child(name, args, r, workdir, engine_tf=name != "seed")
                res["load_after"] = os.getloadavg()[0]
                results[name].append(res)
                print(
                    f"repeat {r} {name}: {res['images_per_s']:.0f} images/s, "
                    f"{res['cpu_s_per_1000']:.3f} CPU s/1000 images, accuracy {res['accuracy']:.4f}, "
                    f"oneDNN env {res['onednn_env']}, {res.get('policy', 'float32')}, load {res['load_after']:.1f}",
                    flush=True,
                )
    lines, summary = summarise(results)
    per_repeat = {
        name: [f"{x['images_per_s']:.0f}/s acc {x['accuracy']:.4f}" for x in rows] for name, rows in results.items()
    }
    lines += [
        "",
        f"{args.dataset}, {info['train']} training images, batch {args.batch_size}, "
        f"{args.epochs} epochs per run (throughput over epochs 2..{args.epochs}), "
        f"{args.repeats} repeats, each side in a fresh process, order alternating; "
        f"engine pipeline {results['engine'][0].get('pipeline')}; "
        f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())} at the end, "
        f"{time.time() - started:.0f} s in all.",
        "",
        f"Machine: {host}",
        "",
        f"Per repeat: {per_repeat}",
    ]
    text = "\n".join(lines)
    print(text)
    Path(args.out).write_text(text + "\n", encoding="utf-8")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(
            json.dumps({"args": vars(args), "machine": host, "summary": summary, "repeats": results}, indent=1),
            encoding="utf-8",
        )


def child_main(args) -> None:
    fn = {"seed": child_seed, "engine": child_engine, "prepare": child_prepare}[args.child]
    if args.child == "seed" and args.engine_tf:
        sys.path.insert(0, str(REPO))
        import worker.engine.tfsetup  # noqa: F401 - the engine's process-level TF settings
    print("RESULT " + json.dumps(fn(args)), flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--limit-train", type=int, default=10000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--steps-per-execution", type=int, default=0, help="default: the spec's")
    p.add_argument("--xla", action="store_true", help="also time the engine loop with XLA")
    p.add_argument(
        "--mixed-precision", action="store_true", help="also time the engine loop with pipeline.mixed_precision"
    )
    p.add_argument(
        "--seed-with-engine-tf",
        action="store_true",
        help="also time the seed's fit in a process with the engine's TF settings",
    )
    p.add_argument("--out", default="bench/results/pipeline_speed.md")
    p.add_argument("--json", default=None, help="raw numbers (default: bench/results/<out stem>.json)")
    # child-process arguments
    p.add_argument("--child", choices=["seed", "engine", "prepare"], help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--repeat", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    p.add_argument("--engine-tf", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child_main(a)
    else:
        a.json = a.json or str(REPO / "bench" / "results" / (Path(a.out).stem + ".json"))
        main(a)
