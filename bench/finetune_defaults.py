"""Issue 14: do the techniques' default fine-tuning settings keep accuracy? A baseline trained
as the worker does, then each technique fine-tuned from the baseline's model
(`model.init_from_run_id`) with the fine-tuning learning rate left to its default and with
explicit rates, all through `worker.engine.job.run_job`. Prints a markdown table and writes
the raw figures as JSON.

    nice -n 5 .venv/bin/python bench/finetune_defaults.py --dataset digits --epochs 6
    nice -n 5 .venv/bin/python bench/finetune_defaults.py --dataset fashion_mnist --limit-train 10000 --epochs 6

"default" means the spec's own default (no `learning_rate` in the technique), so the same
command measures whatever the default is at the time it runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.engine.job import RunSpec  # noqa: E402  (the spec class the engine checks against)


class Reporter:
    def __init__(self, name: str):
        self.name, self.variants = name, {}

    def log_metrics(self, points):
        pass

    def progress(self, fraction, eta_seconds=None):
        pass

    def should_stop(self):
        return False

    def add_variant(self, variant):
        self.variants[variant.format] = variant

    def log(self, message):
        if message.startswith(("phase", "training done")):
            print(f"[{time.strftime('%H:%M:%S')}] {self.name}: {message}", flush=True)


def spec(args: argparse.Namespace, name: str, **over: Any) -> RunSpec:
    dataset: dict[str, Any] = {"name": args.dataset, "validation_split": 0.1}
    if args.limit_train:
        dataset["limit_train"] = args.limit_train
    base: dict[str, Any] = {
        "name": name,
        "dataset": dataset,
        "model": {"architecture": "seed_cnn"},
        "training": {
            "optimizer": {"name": "adam", "learning_rate": args.lr},
            "epochs": args.epochs,
            "batch_size": 32,
            "seed": args.seed,
            "log_every_n_batches": 100,
        },
        "exports": ["float32", "int8"],
        "export_options": {"representative_samples": 200},
        "measurement": {"latency_runs": 10, "warmup_runs": 2, "throughput_batch": 8},
    }
    base.update(over)
    return RunSpec.model_validate(base)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="digits")
    p.add_argument("--limit-train", type=int, default=0)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rates", default="default,0.001,0.0001", help="fine-tuning rates to compare")
    p.add_argument("--techniques", default="qat,pruning,clustering")
    p.add_argument(
        "--extra", default="", help='more recipes as JSON: [["label", {"name": "pruning", "epochs": 4}], ...]'
    )
    p.add_argument("--out", default="")
    args = p.parse_args()
    from worker.engine.job import run_job

    work = Path(tempfile.mkdtemp(prefix="optiboard-finetune-"))
    models: dict[int, Path] = {}

    def run(s: RunSpec) -> Reporter:
        rep = Reporter(s.name)
        out = work / s.name
        out.mkdir()
        t0 = time.monotonic()
        run_job(s, rep, workdir=out, resolve_model=lambda i: models[i], resolve_upload=lambda i: Path("/nonexistent"))
        rep.seconds = time.monotonic() - t0
        return rep

    base = run(spec(args, "baseline"))
    models[1] = base.variants["keras"].path
    ref = base.variants["tflite-float32"].accuracy
    rows = [
        {
            "run": "baseline",
            "rate": f"{args.lr:g} (training)",
            "float32": ref,
            "int8": base.variants["tflite-int8"].accuracy,
            "s": base.seconds,
        }
    ]
    training = spec(args, "x").training.model_dump()
    recipes = {
        "qat": {"name": "qat"},
        "pruning": {"name": "pruning", "target_sparsity": 0.8},
        "clustering": {"name": "clustering", "number_of_clusters": 16},
    }
    todo = []
    for tech in [t for t in args.techniques.split(",") if t]:
        for rate in args.rates.split(","):
            t = dict(recipes[tech])
            if rate != "default":
                t["learning_rate"] = float(rate)
            todo.append((tech, rate, t))
    for label, t in json.loads(args.extra or "[]"):
        todo.append((t["name"], label, t))
    for tech, rate, t in todo:
        s = spec(
            args,
            f"{tech}-{rate}".replace(" ", "_").replace("/", "_"),
            model={"architecture": "seed_cnn", "init_from_run_id": 1},
            training={**training, "epochs": 0},
            techniques=[t],
        )
        rep = run(s)
        rows.append(
            {
                "run": tech,
                "rate": rate,
                "float32": rep.variants["tflite-float32"].accuracy,
                "int8": rep.variants["tflite-int8"].accuracy,
                "s": rep.seconds,
            }
        )
        print(rows[-1], flush=True)
    lines = [
        f"{args.dataset}{f' (first {args.limit_train} training images)' if args.limit_train else ''}, "
        f"seed CNN, {args.epochs} epochs Adam {args.lr:g}, seed {args.seed}; drop = baseline "
        f"float32 .tflite accuracy ({ref:.4f}) minus the variant's, in points",
        "",
        "| technique | fine-tuning rate | float32 acc | int8 acc | int8 drop (pt) | s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['run']} | {r['rate']} | {r['float32']:.4f} | {r['int8']:.4f} | "
            f"{100 * (ref - r['int8']):+.2f} | {r['s']:.0f} |"
        )
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
        Path(args.out).with_suffix(".json").write_text(json.dumps(rows, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
