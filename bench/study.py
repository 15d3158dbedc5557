"""Issue 20's figures: goal-driven studies run through the real service (API with its study
loop, real Celery workers, Redis, SQLite), driven by the Python client as a user would.

    # the headline: smallest feasible model within 1 point of a Fashion-MNIST baseline
    nice -n 5 .venv/bin/python bench/study.py headline --dataset fashion_mnist --limit-train 10000
    # trials per hour with two workers vs one (short digits trials)
    nice -n 5 .venv/bin/python bench/study.py workers --trials 8
    # worker-time saved by the early-stopping rules, and the final hypervolume with and without
    nice -n 5 .venv/bin/python bench/study.py early --trials 12
    # hypervolume after N trials: NSGA-II vs TPE vs random over study seeds
    nice -n 5 .venv/bin/python bench/study.py efficiency --trials 15 --seeds 0 1 2 --workers 2 --threads 1

Every mode first trains a baseline (the seed CNN, `--epochs` epochs, float32 export) through
the service, then runs one or more studies on it with the default search space unless the mode
says otherwise. Raw figures land in bench/results/study_<mode>[_<dataset>].json. `--probe`
runs any mode on digits with 3 trials, so a broken bench is found in a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis  # noqa: E402

import optiboard  # noqa: E402
from backend.store.migrate import upgrade  # noqa: E402
from bench.harness import REPO, git_rev, machine, make_token  # noqa: E402
from tests.stack import Api, Worker, stack_env  # noqa: E402

REDIS_HOST = os.environ.get("OPTIBOARD_BENCH_REDIS_HOST", "redis://127.0.0.1:6379")
RESULTS = REPO / "bench" / "results"


@contextmanager
def private_redis() -> Iterator[str]:
    """A Redis database number no test session or other bench uses now (the tests' atomic
    reservation in db 0), flushed before and after."""
    admin = redis.Redis.from_url(f"{REDIS_HOST}/0")
    for db in range(1, 16):
        key = f"optiboard:test-db:{db}"
        if admin.set(key, os.getpid(), nx=True, ex=4 * 3600):
            break
    else:
        raise RuntimeError("all Redis databases 1-15 are reserved")
    url = f"{REDIS_HOST}/{db}"
    redis.Redis.from_url(url).flushdb()
    try:
        yield url
    finally:
        redis.Redis.from_url(url).flushdb()
        admin.delete(key)


@contextmanager
def service(data: Path, *, workers: int, threads: int | None = None) -> Iterator[tuple[optiboard.Client, list[Worker]]]:
    """The API (with its study loop) and `workers` Celery workers of one job process each;
    `threads`: TensorFlow's intra-op threads per job (TF_NUM_INTRAOP_THREADS; None: one per core)."""
    data.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite:///{data / 'optiboard.db'}"
    upgrade(db_url)
    token = make_token(db_url)
    with private_redis() as redis_url:
        extra = {"OPTIBOARD_STUDY_INTERVAL_S": "1"}
        if threads:
            extra.update(TF_NUM_INTRAOP_THREADS=str(threads), TF_NUM_INTEROP_THREADS="1", OMP_NUM_THREADS=str(threads))
        env = stack_env(data_dir=data, database_url=db_url, redis_url=redis_url, **extra)
        api = Api(env, log=data / "api.log")
        pool = [Worker(env, log=data / f"worker{i}.log", name=f"bench{i}@%h") for i in range(workers)]
        client = optiboard.Client(api.url, token=token)
        try:
            wait_workers(client, workers)
            yield client, pool
        finally:
            client.close()
            api.stop()
            for w in pool:
                w.stop()


def wait_workers(client: optiboard.Client, n: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            online = [w for w in client._json("GET", "/api/workers")["data"] if w.get("online", True)]
            if len(online) >= n:
                return
        except Exception:
            pass
        time.sleep(1)
    raise RuntimeError(f"fewer than {n} workers online after {timeout} s")


def baseline(client: optiboard.Client, args: argparse.Namespace) -> dict[str, Any]:
    dataset: dict[str, Any] = {"name": args.dataset, "validation_split": 0.1}
    if args.limit_train:
        dataset["limit_train"] = args.limit_train
    spec = {
        "name": "study-baseline",
        "experiment": "bench-study",
        "dataset": dataset,
        "model": {"architecture": "seed_cnn"},
        "training": {"epochs": args.epochs, "batch_size": 64, "optimizer": {"name": "adam", "learning_rate": 1e-3}},
        "measurement": {"protocol": "quick"},
        "exports": ["float32"],
    }
    t = time.perf_counter()
    run = client.submit(spec)
    done = client.wait(run["id"], timeout=3600)
    if done["status"] != "succeeded":
        raise RuntimeError(f"baseline {run['id']} {done['status']}: {done.get('error')}")
    print(
        f"[{time.strftime('%H:%M:%S')}] baseline run {run['id']}: {done['headline']} in {time.perf_counter() - t:.0f} s",
        flush=True,
    )
    return done


def run_study(client: optiboard.Client, spec: dict[str, Any], *, timeout: float) -> dict[str, Any]:
    """Create the study, wait for it to end (or `timeout` s: then stop it and wait for the
    trials in flight), return it with every trial (feasible or not) and the wall seconds."""
    t = time.perf_counter()
    study = client.create_study(spec)
    deadline = time.monotonic() + timeout
    last = -1
    while True:
        s = client.get_study(study["id"])
        done = sum(1 for x in s["trials"] if x["state"] != "running")
        if done != last:
            last = done
            print(
                f"[{time.strftime('%H:%M:%S')}] study {study['id']} ({spec['name']}): {done} trials told, {s['status']}",
                flush=True,
            )
        if s["status"] in ("finished", "stopped"):
            break
        if time.monotonic() > deadline:
            client.stop_study(study["id"])
            print(f"[{time.strftime('%H:%M:%S')}] study {study['id']}: wall cap {timeout:.0f} s reached, stopped")
            deadline = float("inf")
        time.sleep(2)
    # A stopped study leaves its running trials to end; wait for them so worker-time is whole.
    while any(x["state"] == "running" for x in client.get_study(study["id"])["trials"]):
        time.sleep(2)
    out = client.get_study(study["id"], include_infeasible=True)
    out["wall_s"] = time.perf_counter() - t
    out["feasible_view"] = {k: client.get_study(study["id"])[k] for k in ("best", "front")}
    return out


def summary(study: dict[str, Any]) -> dict[str, Any]:
    """The figures of one finished study: trials by state, worker seconds, wall seconds, final
    hypervolume, the best feasible gzip/size and its ratio to the baseline's float32 .tflite."""
    trials = study["trials"]
    ref = study["reference"]
    feasible = [t for t in trials if t["feasible"] and t["values"]]
    cost = study["objectives"][0]
    best = min(feasible, key=lambda t: t["values"][cost]) if feasible else None
    hv = study["hypervolume"][-1]["hypervolume"] if study["hypervolume"] else 0.0
    told = [t for t in trials if t["state"] != "running"]
    out: dict[str, Any] = {
        "study_id": study["id"],
        "strategy": study["strategy"],
        "seed": study["seed"],
        "status": study["status"],
        "stop_reason": study["stop_reason"],
        "bar": study["bar"],
        "trials": len(trials),
        "states": {s: sum(1 for t in trials if t["state"] == s) for s in ("complete", "pruned", "failed", "running")},
        "feasible": len(feasible),
        "worker_s": sum(t["worker_seconds"] or 0.0 for t in told),
        # load-independent work: the fine-tuning epochs each told trial's recipe asked for, times
        # the share of them its run completed (a pruned trial stops part way)
        "epochs_trained": sum(
            sum(v for k, v in t["recipe"].items() if k.endswith(".epochs")) * (t["run_progress"] or 0.0) for t in told
        ),
        "mean_trial_worker_s": sum(t["worker_seconds"] or 0.0 for t in told) / max(1, len(told)),
        "wall_s": study["wall_s"],
        "hypervolume": hv,
        "reference": ref,
    }
    if best:
        out["best"] = {
            "number": best["number"],
            "run_id": best["run_id"],
            "recipe": best["recipe"],
            "values": best["values"],
            "accuracy": best["constraint_metric"],
        }
        if cost == "gzip_bytes":
            out["ratio_vs_float32_tflite_gzip"] = ref["gzip_bytes"] / best["values"]["gzip_bytes"]
            out["ratio_vs_float32_tflite_bytes"] = ref["size_bytes"] / best["values"]["gzip_bytes"]
    return out


def in_flight(trials: list[dict[str, Any]]) -> int:
    """The most trials whose runs were between creation and being told at one moment."""
    events = sorted(
        [(t["created_at"], 1) for t in trials] + [(t["told_at"], -1) for t in trials if t["told_at"]],
        key=lambda e: (e[0], e[1]),
    )
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def study_spec(args: argparse.Namespace, base_id: int, **over: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": over.pop("name", args.mode),
        "baseline_run_id": base_id,
        "budget": {"max_trials": args.trials},
        "seed": args.seed,
    }
    spec.update(over)
    return spec


def digits_space(args: argparse.Namespace) -> dict[str, Any]:
    """Short trials for the throughput, early-stopping and efficiency modes: the default chains
    without distillation (a fresh student is the longest trial) and at most `--max-epochs`."""
    e = {"low": 1, "high": args.max_epochs}
    return {
        "chains": ["pruning", "clustering", "pruning+qat", "clustering+qat", "pruning+clustering"],
        "pruning": {"epochs": e},
        "clustering": {"epochs": e},
        "qat": {"epochs": e},
    }


def mode_headline(client: optiboard.Client, args: argparse.Namespace, base: dict[str, Any]) -> dict[str, Any]:
    spec = study_spec(args, base["id"], name="headline")
    if args.budget_s:
        spec["budget"]["wall_seconds"] = args.budget_s
    study = run_study(client, spec, timeout=(args.budget_s or 3600) + 600)
    return {"study": summary(study), "trials": study["trials"], "feasible_view": study["feasible_view"]}


def mode_workers(args: argparse.Namespace, data: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in (1, 2):
        with service(data / f"w{n}", workers=n, threads=args.threads) as (client, _):
            base = baseline(client, args)
            spec = study_spec(
                args,
                base["id"],
                name=f"workers-{n}",
                strategy="random",
                search_space=digits_space(args),
                early_stopping={"prune_trials": False, "stop_study": False},
            )
            study = run_study(client, spec, timeout=3600)
            s = summary(study)
            s["trials_per_hour"] = s["trials"] / s["wall_s"] * 3600
            s["load_average_after"] = os.getloadavg()
            s["max_trials_in_flight"] = in_flight(study["trials"])
            out[f"{n}_workers"] = s
    out["speedup"] = out["2_workers"]["trials_per_hour"] / out["1_workers"]["trials_per_hour"]
    return out


def mode_early(client: optiboard.Client, args: argparse.Namespace, base: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for on in (True, False):
        spec = study_spec(
            args,
            base["id"],
            name=f"early-{'on' if on else 'off'}",
            search_space=digits_space(args) if args.dataset == "digits" else {},
            early_stopping={"prune_trials": on, "stop_study": on},
            min_trials=args.min_trials,
        )
        study = run_study(client, spec, timeout=3600)
        out["on" if on else "off"] = summary(study)
        out[f"trials_{'on' if on else 'off'}"] = study["trials"]  # every trial, to see why two arms differ
    off, on_ = out["off"], out["on"]
    out["worker_time_saved"] = 1 - on_["worker_s"] / off["worker_s"] if off["worker_s"] else None
    out["hypervolume_ratio"] = on_["hypervolume"] / off["hypervolume"] if off["hypervolume"] else None
    out["epochs_saved"] = 1 - on_["epochs_trained"] / off["epochs_trained"] if off["epochs_trained"] else None
    return out


def mode_efficiency(client: optiboard.Client, args: argparse.Namespace, base: dict[str, Any]) -> dict[str, Any]:
    """Seed by seed, one study per strategy on the same space; the figures so far are written
    to `args.partial` after each study, so a bench cut short keeps every whole seed."""
    strategies = ("nsga2", "tpe", "random")
    rows: dict[str, list[dict[str, Any]]] = {s: [] for s in strategies}
    out: dict[str, Any] = {}
    for seed in args.seeds:
        for strategy in strategies:
            spec = study_spec(
                args,
                base["id"],
                name=f"eff-{strategy}-{seed}",
                strategy=strategy,
                seed=seed,
                search_space=digits_space(args),
                early_stopping={"prune_trials": False, "stop_study": False},
            )
            rows[strategy].append(summary(run_study(client, spec, timeout=3600)))
            print(
                f"[{time.strftime('%H:%M:%S')}] {strategy} seed {seed}: {rows[strategy][-1]['hypervolume']}", flush=True
            )
            for name, done in rows.items():
                hvs = [r["hypervolume"] for r in done]
                if not hvs:
                    continue
                out[name] = {
                    "seeds": [r["seed"] for r in done],
                    "hypervolume": hvs,
                    "mean": statistics.fmean(hvs),
                    "spread": max(hvs) - min(hvs),
                    "std": statistics.stdev(hvs) if len(hvs) > 1 else None,
                    "best_gzip_bytes": [r.get("best", {}).get("values", {}).get("gzip_bytes") for r in done],
                    "studies": done,
                }
            if args.partial:
                args.partial.write_text(json.dumps(out, indent=2, default=str) + "\n")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["headline", "workers", "early", "efficiency"])
    p.add_argument("--dataset", default="digits")
    p.add_argument("--limit-train", type=int, default=None, help="train on the first N images")
    p.add_argument("--epochs", type=int, default=6, help="baseline epochs")
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--budget-s", type=float, default=None, help="headline: the study's wall-time budget")
    p.add_argument("--max-epochs", type=int, default=2, help="digits modes: fine-tuning epochs at most")
    p.add_argument(
        "--min-trials",
        type=int,
        default=None,
        help="early: never stop before this many trials (default: the study's own)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="TensorFlow intra-op threads per job (default: per core)")
    p.add_argument("--workers", type=int, default=1, help="headline/early/efficiency: Celery workers")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--probe", action="store_true", help="digits, 3 trials, nothing written")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--partial", type=Path, default=None, help="efficiency: the figures so far, after each study")
    args = p.parse_args()
    if args.probe:
        args.dataset, args.limit_train, args.trials, args.epochs, args.seeds = "digits", None, 3, 2, [0]
    t0 = time.perf_counter()
    result: dict[str, Any] = {
        "mode": args.mode,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": machine(),
        "git": git_rev(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    with tempfile.TemporaryDirectory(prefix="bench-study-") as tmp:
        data = Path(tmp)
        if args.mode == "workers":
            result["result"] = mode_workers(args, data)
        else:
            with service(data, workers=args.workers, threads=args.threads) as (client, _):
                base = baseline(client, args)
                result["baseline"] = {"run_id": base["id"], "headline": base["headline"]}
                fn = {"headline": mode_headline, "early": mode_early, "efficiency": mode_efficiency}[args.mode]
                result["result"] = fn(client, args, base)
    result["total_wall_s"] = time.perf_counter() - t0
    text = json.dumps(result, indent=2, default=str)
    print(text[-4000:])
    if not args.probe:
        name = f"study_{args.mode}" + ("" if args.dataset == "digits" else f"_{args.dataset}")
        name += f"_{args.threads}thread" if args.threads else ""
        out = args.out or RESULTS / f"{name}.json"
        out.write_text(text + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
