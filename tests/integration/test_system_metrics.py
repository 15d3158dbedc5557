"""System metrics through a real Celery worker: every trained run gets system/ points at the
configured cadence, and each run's peak memory is its own, not the warm process's lifetime peak."""

from __future__ import annotations

import pytest

from tests.conftest import Stack
from tests.stack import tiny_spec

pytestmark = [pytest.mark.services, pytest.mark.tensorflow]  # tier: see tests/conftest.py

MIB = 1 << 20


def test_system_points_and_per_run_peak_memory_in_one_warm_worker(live_stack: Stack) -> None:
    c = live_stack.client
    # A bigger job first (batches of 2048 28×28 images through a double-width CNN: hundreds of
    # MB of activations), then a small one in the same warm job process: with the process's
    # lifetime peak (ru_maxrss) the small run would report at least the big one's peak.
    big = c.submit(
        tiny_spec(
            "big",
            dataset={"name": "fashion_mnist", "limit_train": 4096, "limit_test": 200},
            model={"width_multiplier": 2.0},
            training={"epochs": 1, "batch_size": 2048, "log_every_n_batches": 1},
        )
    )
    big_done = c.wait_terminal(big["id"], timeout=240)
    small = c.submit(tiny_spec("small", training={"epochs": 1, "batch_size": 32, "log_every_n_batches": 5}))
    small_done = c.wait_terminal(small["id"], timeout=240)
    assert big_done["status"] == small_done["status"] == "succeeded", (big_done["error"], small_done["error"])
    assert big_done["hardware"]["pid"] == small_done["hardware"]["pid"]  # one warm job process

    for done in (big_done, small_done):
        keys = c.http.get(f"/api/runs/{done['id']}/metrics/keys").json()
        assert {"system/cpu_percent", "system/rss_bytes"} <= set(keys["keys"])
        assert not any(k.startswith("system/gpu_") for k in keys["keys"])  # this machine has no GPU
        assert not any(k.startswith("system/") for k in keys["default_keys"])  # not in the curves' set
        series = c.http.get(
            f"/api/runs/{done['id']}/metrics", params={"keys": "system/cpu_percent,system/rss_bytes"}
        ).json()["series"]
        steps = series["system/rss_bytes"]["steps"]
        assert steps == series["system/cpu_percent"]["steps"]
        # step = whole seconds since the job started, one sample a second (the stack's setting)
        assert steps[0] == 0 and len(steps) >= 2
        assert all(0 < b - a <= 2 for a, b in zip(steps, steps[1:], strict=False))
        assert steps[-1] <= done["duration_seconds"] + 2
        assert len(steps) >= done["duration_seconds"] * 0.5
        rss = series["system/rss_bytes"]["values"]
        assert all(10 * MIB < v < 16_384 * MIB for v in rss), rss
        assert all(v >= 0 for v in series["system/cpu_percent"]["values"])
        assert max(series["system/cpu_percent"]["values"]) > 0  # training uses the CPU
        # the job's peak (VmHWM since the job started) is at least every RSS sampled during it
        assert done["peak_memory_bytes"] >= max(rss)

    # Measured here: big 1971 MiB, small 1921 MiB. The warm process keeps most of what the big job
    # touched (its first sample reads ~1870 MiB), so the small run's own peak sits just above
    # that, yet below the big run's transient peak that ru_maxrss would have repeated.
    assert small_done["peak_memory_bytes"] < big_done["peak_memory_bytes"]
