"""QAT and pruning against their same-budget controls (issue 19 item 2), through run_job as the
worker calls it: per seed, the seed CNN baseline, then from its model the QAT and 80 % pruning
fine-tunes of docs/results.md and each one's control (runspec.controls.control_spec: plain
fine-tuning of the same epochs at the same rate), so each technique's effect is stated net of
the extra training. Writes a markdown section (and the raw numbers as JSON).

    nice -n 5 .venv/bin/python bench/controls.py --seeds 0 1 2 --out bench/results/controls.md
    .venv/bin/python bench/controls.py --dataset digits --epochs 3 --seeds 0 --out /tmp/probe.md  # a probe

Needs the four Fashion-MNIST files in ~/.keras/datasets/fashion-mnist/ (or $KERAS_HOME) unless
--dataset digits.
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

from runspec.controls import control_spec  # noqa: E402
from runspec.spec import RunSpec  # noqa: E402
from worker.engine.contract import VariantResult  # noqa: E402

# Two-sided 95 % Student t quantiles by degrees of freedom (n - 1).
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


class RecordingReporter:
    def __init__(self, name: str):
        self.name = name
        self.variants: dict[str, VariantResult] = {}
        self.epochs = 0

    def log_metrics(self, points):
        self.epochs = max([self.epochs, *(int(v) for k, _, v in points if k == "epoch")])

    def progress(self, fraction, eta_seconds=None):
        pass

    def should_stop(self):
        return False

    def add_variant(self, variant):
        self.variants[variant.format] = variant

    def log(self, message):
        if message.startswith(("recipe", "phase", "training done")):
            print(f"[{time.strftime('%H:%M:%S')}] {self.name}: {message}", flush=True)


def spec(name: str, seed: int, **over: Any) -> RunSpec:
    base: dict[str, Any] = {
        "name": name,
        "dataset": {"name": ARGS.dataset, "validation_split": 0.1},
        "model": {"architecture": "seed_cnn"},
        "training": {
            "optimizer": {"name": "adam", "learning_rate": 0.001},
            "epochs": ARGS.epochs,
            "batch_size": ARGS.batch_size,
            "seed": seed,
            "log_every_n_batches": 100,
            "pipeline": {"steps_per_execution": 8},
        },
        "exports": ["float32", "int8"],
        "export_options": {"representative_samples": 500},
        # accuracy and size are the figures here; latency is in docs/benchmarks.md
        "measurement": {"protocol": "quick", "latency_runs": 50, "warmup_runs": 5, "throughput_batch": 8},
    }
    base.update(over)
    return RunSpec.model_validate(base)


def run(s: RunSpec, models: dict[int, Path], workdir: Path) -> RecordingReporter:
    from worker.engine.job import run_job

    rep = RecordingReporter(s.name)
    out = workdir / s.name.replace(" ", "_")
    out.mkdir()
    run_job(s, rep, workdir=out, resolve_model=lambda i: models[i], resolve_upload=lambda i: Path("/nonexistent"))
    return rep


def mean_ci(xs: list[float]) -> str:
    """'mean ± half-width' of the 95 % Student t interval (one value: the value alone)."""
    if len(xs) < 2:
        return f"{xs[0]:+.2f}"
    half = T95[len(xs) - 1] * statistics.stdev(xs) / math.sqrt(len(xs))
    return f"{statistics.mean(xs):+.2f} ± {half:.2f}"


def one_seed(seed: int, work: Path) -> dict[str, dict[str, Any]]:
    models: dict[int, Path] = {}
    base = run(spec(f"baseline-s{seed}", seed), models, work)
    models[1] = base.variants["keras"].path
    # as in bench/engine_results.py: the fine-tunes start from the baseline's model
    from_base = {"model": {"architecture": "seed_cnn", "init_from_run_id": 1}}
    training = spec("x", seed).training.model_dump()
    tuned = {**from_base, "training": {**training, "epochs": 0}, "control": True}
    qat = spec(
        f"qat-s{seed}", seed, **tuned, techniques=[{"name": "qat", "epochs": ARGS.qat_epochs, "learning_rate": 1e-4}]
    )
    prune = spec(
        f"prune80-s{seed}",
        seed,
        **tuned,
        techniques=[{"name": "pruning", "target_sparsity": 0.8, "epochs": ARGS.prune_epochs, "learning_rate": 5e-4}],
    )
    out: dict[str, dict[str, Any]] = {}
    for name, s in (("baseline", None), ("qat", qat), ("qat_control", control_spec(qat))):
        out[name] = figures(base if s is None else run(s, models, work))
    for name, s in (("prune80", prune), ("prune80_control", control_spec(prune))):
        out[name] = figures(run(s, models, work))
    return out


def figures(rep: RecordingReporter) -> dict[str, Any]:
    return {
        "epochs": rep.epochs,
        **{
            f: {"accuracy": v.accuracy, "f1": v.f1, "size_bytes": v.size_bytes, "gzip_bytes": v.gzip_bytes}
            for f, v in rep.variants.items()
        },
    }


def report(per_seed: dict[int, dict[str, dict[str, Any]]], seconds: float) -> str:
    seeds = sorted(per_seed)

    def acc(seed: int, run_name: str, fmt: str) -> float:
        return 100 * per_seed[seed][run_name][fmt]["accuracy"]

    def diffs(a: tuple[str, str], b: tuple[str, str]) -> list[float]:
        return [acc(s, *a) - acc(s, *b) for s in seeds]

    f32, i8 = "tflite-float32", "tflite-int8"
    rows = [
        ("QAT int8 vs baseline float32 (the old figure 3, negated)", diffs(("qat", i8), ("baseline", f32))),
        (
            "control float32 vs baseline float32 (2 more epochs, no technique)",
            diffs(("qat_control", f32), ("baseline", f32)),
        ),
        (
            "**QAT int8 vs control float32 (QAT's int8 net of extra training)**",
            diffs(("qat", i8), ("qat_control", f32)),
        ),
        ("**QAT int8 vs control int8 PTQ (QAT instead of PTQ, same budget)**", diffs(("qat", i8), ("qat_control", i8))),
        ("pruning int8 vs baseline float32 (the old figure 5, negated)", diffs(("prune80", i8), ("baseline", f32))),
        (
            "control float32 vs baseline float32 (3 more epochs, no technique)",
            diffs(("prune80_control", f32), ("baseline", f32)),
        ),
        (
            "**pruning int8 vs control int8 (80 % pruning net of extra training)**",
            diffs(("prune80", i8), ("prune80_control", i8)),
        ),
        ("**pruning float32 vs control float32**", diffs(("prune80", f32), ("prune80_control", f32))),
    ]
    n = len(seeds)
    lines = [
        f"| accuracy difference, points (positive: the first is better) | mean{' ± 95 % CI' if n > 1 else ''} ({n} seed{'s' if n > 1 else ''}) | per seed |",
        "| --- | --- | --- |",
        *[f"| {label} | {mean_ci(d)} | {' / '.join(f'{x:+.2f}' for x in d)} |" for label, d in rows],
        "",
        "| seed | run | epochs | float32 acc | int8 acc | int8 gzip (bytes) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for s in seeds:
        for name, r in per_seed[s].items():
            lines.append(
                f"| {s} | {name} | {r['epochs']} | {r[f32]['accuracy']:.4f} | {r[i8]['accuracy']:.4f} | {r[i8]['gzip_bytes']} |"
            )
    gz = [per_seed[s]["prune80"][i8]["gzip_bytes"] / per_seed[s]["prune80_control"][i8]["gzip_bytes"] for s in seeds]
    lines += [
        "",
        f"Pruned int8 gzip / control int8 gzip: {' / '.join(f'{g:.3f}' for g in gz)}. "
        f"Settings: {vars(ARGS)}; {seconds:.0f} s in all.",
    ]
    return "\n".join(lines)


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="optiboard-controls-"))
    started = time.monotonic()
    per_seed: dict[int, dict[str, dict[str, Any]]] = {}
    for seed in ARGS.seeds:
        per_seed[seed] = one_seed(seed, work)
        text = report(per_seed, time.monotonic() - started)  # written after every seed: a partial result survives
        Path(ARGS.out).write_text(text + "\n", encoding="utf-8")
        Path(ARGS.out).with_suffix(".json").write_text(json.dumps(per_seed, indent=1))
    print(text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="fashion_mnist", choices=["fashion_mnist", "digits"])
    parser.add_argument("--epochs", type=int, default=6, help="baseline training epochs")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--qat-epochs", type=int, default=2)
    parser.add_argument("--prune-epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="bench/results/controls.md")
    ARGS = parser.parse_args()
    main()
