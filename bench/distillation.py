"""Distillation against the same student trained from scratch (docs/results.md, "Distillation
against training from scratch"), through run_job as the worker calls it.

Trains the seed CNN teacher once, then for each seed the same student (seed_cnn at
--width) twice with the same epochs, optimizer, schedule, augmentation, mixup and seed:
(a) distilled from the teacher, teacher logits on every augmented batch; (b) from scratch.
Reports the mean paired difference of test accuracy (distilled − scratch, in points) with its
95 % interval (Student's t over seeds, scipy.stats.t) and writes the raw numbers as JSON.

    nice -n 5 .venv/bin/python bench/distillation.py --dataset fashion_mnist \\
        --out bench/results/distillation-fashion_mnist.json

Fashion-MNIST needs its four files in ~/.keras/datasets/fashion-mnist/ (`make fashion-mnist`).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.engine_results import RecordingReporter  # noqa: E402
from runspec.architectures import total_params  # noqa: E402
from runspec.spec import RunSpec  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="fashion_mnist", choices=["fashion_mnist", "digits", "mnist"])
    p.add_argument("--limit-train", type=int, default=None, help="dataset.limit_train (e.g. 2000)")
    p.add_argument("--validation-split", type=float, default=0.0)
    p.add_argument("--teacher-epochs", type=int, default=12)
    p.add_argument("--teacher-width", type=float, default=1.0)
    p.add_argument("--teacher-mixup", type=float, default=0.0, help="the teacher's training.mixup_alpha")
    p.add_argument("--teacher-only", action="store_true", help="train and measure the teacher, then stop")
    p.add_argument(
        "--teacher-epoch",
        type=int,
        default=None,
        help="distil from the teacher's checkpoint after this epoch (the teacher keeps one every epoch)",
    )
    p.add_argument("--epochs", type=int, default=12, help="student epochs, distilled and from scratch alike")
    p.add_argument("--width", type=float, default=0.25, help="the student's width multiplier")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--learning-rate", type=float, default=0.002)
    p.add_argument("--schedule", default="cosine", choices=["constant", "cosine"])
    p.add_argument("--temperature", type=float, default=4.0)
    p.add_argument("--alpha", type=float, default=0.1)
    p.add_argument("--shift", type=float, default=0.1, help="training.augmentation.shift")
    p.add_argument("--flip", action="store_true", help="training.augmentation.horizontal_flip")
    p.add_argument("--mixup", type=float, default=0.2, help="training.mixup_alpha")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--teacher-model", default=None, help="reuse this teacher .keras file instead of training one")
    p.add_argument("--out", default=None, help="JSON file for the raw numbers")
    return p.parse_args(argv)


def spec(
    args: argparse.Namespace,
    name: str,
    *,
    seed: int,
    width: float,
    epochs: int,
    mixup: float | None = None,
    **over: Any,
) -> RunSpec:
    """One run of the comparison: every option but the technique is shared by both arms."""
    base: dict[str, Any] = {
        "name": name,
        "dataset": {
            "name": args.dataset,
            "validation_split": args.validation_split,
            "limit_train": args.limit_train,
            "seed": 0,
        },
        "model": {"architecture": "seed_cnn", "width_multiplier": width},
        "training": {
            "optimizer": {"name": "adam", "learning_rate": args.learning_rate},
            "schedule": {"name": args.schedule},
            "epochs": epochs,
            "batch_size": args.batch_size,
            "seed": seed,
            "log_every_n_batches": 100,
            "pipeline": {"steps_per_execution": 8},
            "augmentation": {"shift": args.shift, "horizontal_flip": args.flip},
            "mixup_alpha": args.mixup if mixup is None else mixup,
        },
        "exports": [],
        "measurement": {"protocol": "off"},
    }
    base.update(over)
    return RunSpec.model_validate(base)


def run(s: RunSpec, models: dict[int, Path], work: Path, checkpoints: Path | None = None) -> dict[str, Any]:
    from worker.engine.job import run_job

    rep = RecordingReporter(s.name)
    out = work / s.name
    out.mkdir()
    started = time.monotonic()
    summary = run_job(
        s,
        rep,
        workdir=out,
        resolve_model=lambda i: models[i],
        resolve_upload=lambda i: Path("/nonexistent"),
        resolve_checkpoint=lambda i, epoch: (checkpoints or Path("/nonexistent")) / f"epoch-{epoch}.keras",
    )
    keras_variant = rep.variants["keras"]
    last = {k: v for k, _, v in rep.points if k.startswith("distillation/")}
    return {
        "name": s.name,
        "accuracy": keras_variant.accuracy,
        "params": keras_variant.params,
        "path": str(keras_variant.path),
        "train_seconds": summary.train_seconds,
        "wall_seconds": time.monotonic() - started,
        **last,
    }


def measure_teacher(args: argparse.Namespace) -> dict[str, Any]:
    """A reused teacher file's test accuracy and parameters, by the same harness as the runs."""
    from worker.engine.data import load_data
    from worker.engine.measure import TestSet, measure_variant

    s = spec(args, "teacher", seed=0, width=args.teacher_width, epochs=1)
    data = load_data(s.dataset, lambda i: Path("/nonexistent"))
    measured = measure_variant(
        Path(args.teacher_model), "keras", TestSet(data.x_test, data.y_test, data.classes), s.measurement
    )
    return {"accuracy": measured.accuracy, "params": measured.params}


def paired_interval(diffs: list[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of the mean paired difference: mean ± t_{(1+c)/2, n−1}·s/√n (Student's t;
    s the sample standard deviation). With one pair the interval is (−inf, inf)."""
    from scipy import stats

    n = len(diffs)
    mean = statistics.fmean(diffs)
    if n < 2:
        return mean, -math.inf, math.inf
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * statistics.stdev(diffs) / math.sqrt(n)
    return mean, mean - half, mean + half


def main(argv: list[str] | None = None) -> dict[str, Any]:
    logging.basicConfig(level=logging.WARNING)
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="optiboard-distill-"))
    started = time.monotonic()
    models: dict[int, Path] = {}
    if args.teacher_model:
        models[1] = Path(args.teacher_model)
        teacher: dict[str, Any] = {"path": args.teacher_model, "reused": True, **measure_teacher(args)}
    else:
        teacher_spec = spec(
            args, "teacher", seed=0, width=args.teacher_width, epochs=args.teacher_epochs, mixup=args.teacher_mixup
        )
        if args.teacher_epoch:
            training = teacher_spec.training.model_copy(update={"checkpoint_every_epochs": 1})
            teacher_spec = teacher_spec.model_copy(update={"training": training})
        teacher = run(teacher_spec, models, work)
        models[1] = Path(teacher["path"])
        if args.teacher_only:
            print(json.dumps(teacher), flush=True)
            return {"teacher": teacher}
    student_params = total_params(spec(args, "x", seed=0, width=args.width, epochs=1).model, args.dataset)
    teacher_params = total_params(spec(args, "x", seed=0, width=args.teacher_width, epochs=1).model, args.dataset)
    rows = []
    for seed in args.seeds:
        distilled = run(
            spec(
                args,
                f"distilled-s{seed}",
                seed=seed,
                width=args.width,
                epochs=args.epochs,
                techniques=[
                    {
                        "name": "distillation",
                        "teacher_run_id": 1,
                        "temperature": args.temperature,
                        "alpha": args.alpha,
                        "teacher_epoch": args.teacher_epoch,
                    }
                ],
            ),
            models,
            work,
            checkpoints=work / "teacher" / "checkpoints",
        )
        scratch = run(spec(args, f"scratch-s{seed}", seed=seed, width=args.width, epochs=args.epochs), models, work)
        rows.append({"seed": seed, "distilled": distilled, "scratch": scratch})
        print(
            f"seed {seed}: distilled {distilled['accuracy']:.4f}, scratch {scratch['accuracy']:.4f}, "
            f"difference {100 * (distilled['accuracy'] - scratch['accuracy']):+.2f} pt",
            flush=True,
        )
    diffs = [100 * (r["distilled"]["accuracy"] - r["scratch"]["accuracy"]) for r in rows]
    mean, low, high = paired_interval(diffs)
    result = {
        "settings": vars(args),
        "teacher": teacher,
        "teacher_params": teacher_params,
        "student_params": student_params,
        "param_ratio": student_params / teacher_params if student_params and teacher_params else None,
        "runs": rows,
        "difference_points": diffs,
        "mean_difference_points": mean,
        "ci95_points": [low, high],
        "distilled_mean": statistics.fmean(r["distilled"]["accuracy"] for r in rows),
        "scratch_mean": statistics.fmean(r["scratch"]["accuracy"] for r in rows),
        "target_reached": mean >= 0.5 and low > 0,
        "wall_seconds": time.monotonic() - started,
    }
    print(
        f"{args.dataset}{'' if args.limit_train is None else f' (first {args.limit_train})'}: teacher "
        f"{teacher.get('accuracy', float('nan')):.4f}; distilled {result['distilled_mean']:.4f} vs scratch "
        f"{result['scratch_mean']:.4f}: {mean:+.2f} pt, 95 % interval [{low:+.2f}, {high:+.2f}] over "
        f"{len(rows)} seeds; params ratio {result['param_ratio']:.3f}; {result['wall_seconds']:.0f} s",
        flush=True,
    )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
