"""Many workers, one Redis and one PostgreSQL: the many-hosts deployment on one machine.

`optiboard worker --gpus all` starts two real Celery worker processes, one per GPU that
`nvidia-smi` lists (GPUs are the one thing faked: a stand-in `nvidia-smi` lists two, and each
process gets its own CUDA_VISIBLE_DEVICES), next to a real API. Both must
take runs, and the operations endpoints must see them.
"""

from __future__ import annotations

import os
import re
import signal
import socket
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_token
from tests.deploy.conftest import FAKE_GPUS
from tests.stack import Api, Client, cli, stack_env, stop, tiny_spec, wait_for

pytestmark = pytest.mark.slow
HOST = socket.gethostname()
NODES = {f"gpu0@{HOST}": "0", f"gpu1@{HOST}": "1"}


def _online(client: Client) -> dict[str, dict]:
    r = client.http.get("/api/workers", params={"timeout": 1.0})
    r.raise_for_status()
    return {w["name"]: w for w in r.json()["data"]}


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if labels else "") + r" (\S+)"
    match = re.search(r"^" + pattern + r"$", text, re.MULTILINE)
    assert match, f"no sample {name}{{{wanted}}} in:\n{text}"
    return float(match[1])


def test_two_gpu_workers_share_redis_and_postgres_and_both_take_runs(
    tmp_path: Path, pg_url: str, redis_url: str, fake_nvidia_smi: Path
) -> None:
    env = stack_env(
        data_dir=tmp_path,
        database_url=pg_url,
        redis_url=redis_url,
        OPTIBOARD_REAPER_INTERVAL_S="2",
        OPTIBOARD_WORKER_QUEUES="train,optimize",
    )
    env["PATH"] = f"{fake_nvidia_smi}{os.pathsep}{env['PATH']}"  # "two GPUs" for --gpus all
    api = Api(env, log=tmp_path / "api.log")
    client = Client(api.url, make_token(pg_url))
    supervisor = cli(["worker", "--gpus", "all"], env, log=tmp_path / "workers.log")
    try:
        workers = wait_for(
            lambda: (o := _online(client)).keys() >= NODES.keys() and o, timeout=120, what="both GPU workers online"
        )
        for name, gpu in NODES.items():
            assert workers[name]["hardware"]["cuda_visible_devices"] == gpu
            assert [g["name"] for g in workers[name]["hardware"]["gpus"]] == [FAKE_GPUS[gpu]]
            assert set(workers[name]["queues"]) == {"train", "optimize"}
            assert workers[name]["concurrency"] == 1

        # as small as a run gets (one epoch on 200 digits): what is checked is where runs go
        small = {"dataset": {"name": "digits", "limit_train": 200}, "training": {"epochs": 1, "batch_size": 32}}
        submitted = [client.submit(tiny_spec(f"scale-{i}", experiment="scaling", **small)) for i in range(4)]
        finished = [client.wait_terminal(run["id"], timeout=600) for run in submitted]

        assert [r["status"] for r in finished] == ["succeeded"] * 4, finished
        took = {r["worker"] for r in finished}
        assert took == set(NODES), f"runs went to {took}"
        for run in finished:
            # Each run records the GPU its process was pinned to, by index and by name.
            assert run["hardware"]["cuda_visible_devices"] == NODES[run["worker"]]
            assert run["hardware"]["gpu"] == FAKE_GPUS[NODES[run["worker"]]]

        metrics = client.http.get("/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = metrics.text
        assert _sample(text, "optiboard_runs", status="succeeded") == 4
        assert _sample(text, "optiboard_runs", status="running") == 0
        assert _sample(text, "optiboard_broker_up") == 1
        assert _sample(text, "optiboard_queue_length", queue="train") == 0
        count = _sample(text, "optiboard_run_duration_seconds_count", kind="train", status="succeeded")
        assert count == 4
        assert _sample(text, "optiboard_run_duration_seconds_bucket", kind="train", status="succeeded", le="+Inf") == 4
        assert _sample(text, "optiboard_run_duration_seconds_sum", kind="train", status="succeeded") > 0
        assert _sample(text, "optiboard_metric_points") > 0
        assert httpx.get(f"{api.url}/metrics").status_code == 401, "metrics need a token"

        # SIGTERM to the supervisor reaches both workers; they stop and leave nothing behind.
        assert stop(supervisor, sig=signal.SIGTERM, timeout=120) == 0
        assert wait_for(lambda: not _online(client), timeout=30, what="workers gone")
    finally:
        stop(supervisor, timeout=60)
        client.close()
        api.stop()
