"""The technique figures of docs/results.md on full Fashion-MNIST with the seed CNN, through run_job as the worker
calls it. Writes a markdown table (and the raw numbers as JSON) and says which targets held.

    nice -n 5 .venv/bin/python bench/engine_results.py --out bench/results/engine_results.md

Needs the four Fashion-MNIST files in ~/.keras/datasets/fashion-mnist/ (or $KERAS_HOME).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runspec.architectures import total_params  # noqa: E402
from runspec.spec import RunSpec  # noqa: E402
from worker.engine.contract import VariantResult  # noqa: E402


class RecordingReporter:
    def __init__(self, name: str):
        self.name = name
        self.points: list[tuple[str, int, float]] = []
        self.variants: dict[str, VariantResult] = {}

    def log_metrics(self, points):
        self.points.extend(points)

    def progress(self, fraction, eta_seconds=None):
        pass

    def should_stop(self):
        return False

    def add_variant(self, variant):
        self.variants[variant.format] = variant

    def log(self, message):
        print(f"[{time.strftime('%H:%M:%S')}] {self.name}: {message}", flush=True)


def spec(name: str, **over: Any) -> RunSpec:
    base: dict[str, Any] = {
        "name": name,
        "dataset": {"name": "fashion_mnist", "validation_split": 0.1},
        "model": {"architecture": "seed_cnn"},
        "training": {
            "optimizer": {"name": "adam", "learning_rate": 0.001},
            "epochs": ARGS.epochs,
            "batch_size": ARGS.batch_size,
            "seed": 0,
            "log_every_n_batches": 100,
            "pipeline": {"steps_per_execution": 8},
        },
        "exports": ["float32", "int8"],
        "export_options": {"representative_samples": 500},
        "measurement": {"latency_runs": 300, "warmup_runs": 30, "throughput_batch": 32},
    }
    base.update(over)
    return RunSpec.model_validate(base)


def run(s: RunSpec, models: dict[int, Path], workdir: Path) -> tuple[RecordingReporter, Any]:
    from worker.engine.job import run_job

    rep = RecordingReporter(s.name)
    out = workdir / s.name
    out.mkdir()
    summary = run_job(
        s, rep, workdir=out, resolve_model=lambda i: models[i], resolve_upload=lambda i: Path("/nonexistent")
    )
    return rep, summary


def distill_only(work: Path) -> None:
    """Only the distillation figure, against a teacher saved by an earlier full run (its
    `baseline/model.keras`): the teacher is measured again by the same harness."""
    from worker.engine.data import load_data
    from worker.engine.measure import TestSet, measure_variant

    teacher_path = Path(ARGS.teacher_model)
    models = {1: teacher_path}
    training = spec("x").training.model_dump()
    student_spec = spec(
        "distilled",
        model={"architecture": "seed_cnn", "width_multiplier": ARGS.student_width},
        training={**training, "epochs": ARGS.student_epochs},
        techniques=[{"name": "distillation", "teacher_run_id": 1, "temperature": 4.0, "alpha": 0.1}],
    )
    student, summary = run(student_spec, models, work)
    data = load_data(student_spec.dataset, lambda i: Path("/nonexistent"))
    teacher = measure_variant(
        teacher_path, "keras", TestSet(data.x_test, data.y_test, data.classes), student_spec.measurement
    )
    s = student.variants["keras"]
    ratio, gap = s.params / teacher.params, 100 * (teacher.accuracy - s.accuracy)
    text = "\n".join(
        [
            "| figure | measured | target | reached |",
            "| --- | --- | --- | --- |",
            f"| distilled student params / teacher | {ratio:.3f} | ≤ 0.25 | {'yes' if ratio <= 0.25 else '**no**'} |",
            f"| distilled student gap to teacher (points) | {gap:.2f} | ≤ 1.5 | {'yes' if gap <= 1.5 else '**no**'} |",
            "",
            f"teacher {teacher_path}: accuracy {teacher.accuracy:.4f}, {teacher.params} params; "
            f"student: accuracy {s.accuracy:.4f} (tflite-int8 "
            f"{student.variants['tflite-int8'].accuracy:.4f}), {s.params} params, "
            f"{summary.epochs_done} epochs, {summary.train_seconds:.0f} s; settings: {vars(ARGS)}",
        ]
    )
    print(text)
    Path(ARGS.out).write_text(text + "\n", encoding="utf-8")


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="optiboard-bench-"))
    if ARGS.teacher_model:
        distill_only(work)
        return
    models: dict[int, Path] = {}
    started = time.monotonic()
    training = spec("x").training.model_dump()

    base, base_sum = run(spec("baseline"), models, work)
    models[1] = base.variants["keras"].path
    # the fine-tuning runs start from the baseline's model (model.init_from_run_id), as a
    # user would launch them from a finished run, so their drops are against that model
    from_base = {"architecture": "seed_cnn", "init_from_run_id": 1}
    qat, qat_sum = run(
        spec(
            "qat",
            model=from_base,
            training={**training, "epochs": 0},
            techniques=[{"name": "qat", "epochs": ARGS.qat_epochs, "learning_rate": ARGS.tune_lr}],
        ),
        models,
        work,
    )
    pruned, pruned_sum = run(
        spec(
            "prune80",
            model=from_base,
            training={**training, "epochs": 0},
            techniques=[
                {
                    "name": "pruning",
                    "target_sparsity": 0.8,
                    "schedule": "polynomial",
                    "epochs": ARGS.prune_epochs,
                    "learning_rate": ARGS.prune_lr,
                }
            ],
        ),
        models,
        work,
    )
    student_spec = spec(
        "distilled",
        model={"architecture": "seed_cnn", "width_multiplier": ARGS.student_width},
        training={**training, "epochs": ARGS.student_epochs},
        techniques=[{"name": "distillation", "teacher_run_id": 1, "temperature": 4.0, "alpha": 0.1}],
    )
    student, student_sum = run(student_spec, models, work)

    f32 = base.variants["tflite-float32"]
    float_acc = f32.accuracy
    rows: list[tuple[str, str, str, bool]] = []

    def check(label: str, value: str, target: str, ok: bool) -> None:
        rows.append((label, value, target, ok))

    i8 = base.variants["tflite-int8"]
    check(
        "int8 PTQ size / float32 .tflite",
        f"{i8.size_bytes / f32.size_bytes:.3f}",
        "≤ 0.27",
        i8.size_bytes / f32.size_bytes <= 0.27,
    )
    check(
        "int8 PTQ accuracy drop (points)",
        f"{100 * (float_acc - i8.accuracy):.2f}",
        "≤ 0.5",
        100 * (float_acc - i8.accuracy) <= 0.5,
    )
    q8 = qat.variants["tflite-int8"]
    check(
        "QAT int8 accuracy drop vs float (points)",
        f"{100 * (float_acc - q8.accuracy):.2f}",
        "≤ 0.3",
        100 * (float_acc - q8.accuracy) <= 0.3,
    )
    p8 = pruned.variants["tflite-int8"]
    check(
        "80 % pruning + int8: gzip / float32 .tflite",
        f"{p8.gzip_bytes / f32.size_bytes:.3f}",
        "≤ 0.12",
        p8.gzip_bytes / f32.size_bytes <= 0.12,
    )
    check(
        "80 % pruning + int8 accuracy drop (points)",
        f"{100 * (float_acc - p8.accuracy):.2f}",
        "≤ 1",
        100 * (float_acc - p8.accuracy) <= 1.0,
    )
    teacher_k, student_k = base.variants["keras"], student.variants["keras"]
    ratio = student_k.params / teacher_k.params
    check("distilled student params / teacher", f"{ratio:.3f}", "≤ 0.25", ratio <= 0.25)
    gap = 100 * (teacher_k.accuracy - student_k.accuracy)
    check("distilled student gap to teacher (points)", f"{gap:.2f}", "≤ 1.5", gap <= 1.5)

    lines = [
        "| figure | measured | target | reached |",
        "| --- | --- | --- | --- |",
        *[f"| {a} | {b} | {c} | {'yes' if ok else '**no**'} |" for a, b, c, ok in rows],
        "",
        "| run | variant | accuracy | size (bytes) | gzip (bytes) | params | nonzero | p50 ms | p95 ms | train s |",
        "|" + " --- |" * 10,
    ]
    for name, rep, summ in (
        ("baseline", base, base_sum),
        ("qat", qat, qat_sum),
        ("prune80", pruned, pruned_sum),
        ("distilled", student, student_sum),
    ):
        for fmt, v in rep.variants.items():
            lines.append(
                f"| {name} | {fmt} | {v.accuracy:.4f} | {v.size_bytes} | {v.gzip_bytes} | "
                f"{v.params} | {v.nonzero_params} | {v.latency_p50_ms:.3f} | "
                f"{v.latency_p95_ms:.3f} | {summ.train_seconds:.0f} |"
            )
    hw = f32.hardware
    lines += [
        "",
        f"Hardware: {hw.get('cpu')} ({hw.get('cpu_count')} cores), TensorFlow "
        f"{hw.get('tensorflow')}, LiteRT {hw.get('ai_edge_litert')}; settings: {vars(ARGS)}; "
        f"student x{ARGS.student_width} = "
        f"{total_params(student_spec.model, 'fashion_mnist')} params; "
        f"total {time.monotonic() - started:.0f} s.",
    ]
    text = "\n".join(lines)
    print(text)
    Path(ARGS.out).write_text(text + "\n", encoding="utf-8")
    raw = {
        name: {
            "summary": dataclasses.asdict(s),
            "variants": {
                f: {k: (str(x) if k == "path" else x) for k, x in dataclasses.asdict(v).items() if k != "confusion"}
                for f, v in r.variants.items()
            },
        }
        for name, r, s in (
            ("baseline", base, base_sum),
            ("qat", qat, qat_sum),
            ("prune80", pruned, pruned_sum),
            ("distilled", student, student_sum),
        )
    }
    Path(ARGS.out).with_suffix(".json").write_text(json.dumps(raw, indent=1, default=str))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=6, help="baseline training epochs")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--qat-epochs", type=int, default=2)
    parser.add_argument("--tune-lr", type=float, default=1e-4, help="QAT fine-tuning rate")
    parser.add_argument("--prune-epochs", type=int, default=3)
    parser.add_argument("--prune-lr", type=float, default=5e-4)
    parser.add_argument("--student-width", type=float, default=0.45)
    parser.add_argument("--student-epochs", type=int, default=6)
    parser.add_argument(
        "--teacher-model", default="", help="only the distillation figure, with this saved baseline .keras as teacher"
    )
    parser.add_argument("--out", default="bench/results/engine_results.md")
    ARGS = parser.parse_args()
    main()
