"""The client sends while a script runs, never makes the script wait on the network, gives up
at the end within the time it was given, and says exactly what happened: against the real API
(live_stack), with real network failures from the TCP proxy (tests/client/netproxy) or a real
closed port, no mocks.

- Points go out at least every `flush_interval_s` (1 s), not only when `batch_size` (1000)
  points have piled up: a user's run showed "0 keys logged" for 8 of 15 epochs.
- `log_metrics` never waits for the server, even a slow one; a fast loop still sends big
  batches.
- `flush`/`finish(timeout_s=...)` and the exit flush are bounded.
- Warnings and errors count right ("0 metric points unsent: 1 metric points of run 70 refused").
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

import optiboard
from tests.client.netproxy import PASS, RESET, Proxy
from tests.conftest import Stack
from tests.stack import free_port, wait_for

REPO = Path(__file__).resolve().parents[2]


def keys(live_stack: Stack, rid: int) -> list[str]:
    """What the run page lists ("N keys logged"): GET /api/runs/{id}/metrics/keys."""
    r = httpx.get(
        f"{live_stack.url}/api/runs/{rid}/metrics/keys",
        headers={"Authorization": f"Bearer {live_stack.token}"},
        timeout=10,
    )
    r.raise_for_status()
    return list(r.json()["keys"])


def only_run_creation(method: str, path: str) -> str:
    """A server that went away right after the run was created."""
    return PASS if (method, path) == ("POST", "/api/runs") else RESET


def test_points_go_out_within_the_flush_interval_without_a_flush(live_stack: Stack) -> None:
    """A few points, far below batch_size: visible on the server within ~1 s, with the
    defaults a user gets (they stayed unsent until 1000 points had piled up)."""
    ob = optiboard.Client(live_stack.url, token=live_stack.token)
    try:
        rid = ob.create_external_run("live-interval", experiment="client-tests")["id"]
        for step in range(5):
            ob.log_metrics(rid, {"loss": 1.0 / (step + 1), "accuracy": step / 10}, step=step)
        assert wait_for(lambda: keys(live_stack, rid), timeout=8, what="keys on the server") == ["accuracy", "loss"]
        wait_for(lambda: ob.unsent(rid) == 0, timeout=8, what="every point acknowledged")
        assert ob.metrics(rid, keys=["loss"])["loss"]["steps"] == [0, 1, 2, 3, 4]
        ob.log_metrics(rid, {"loss": 0.1}, step=5)  # and again later, still without a flush
        wait_for(lambda: ob.last_step(rid) == 5, timeout=8, what="a later point on the server")
        ob.finish(rid)
    finally:
        ob.close()


def test_log_metrics_never_waits_for_a_slow_server(live_stack: Stack) -> None:
    """Every metrics POST takes 2 s (the proxy holds it): log_metrics calls still return at
    once (one took the whole 2 s when a full batch was sent from the caller's thread)."""

    def slow(method: str, path: str) -> str:
        if path.endswith("/metrics") and method == "POST":
            time.sleep(2.0)
        return PASS

    proxy = Proxy(live_stack.url, slow)
    ob = optiboard.Client(proxy.url, token=live_stack.token, batch_size=50)
    try:
        rid = ob.create_external_run("live-slow-server", experiment="client-tests")["id"]
        longest = 0.0
        for step in range(300):
            t = time.perf_counter()
            ob.log_metrics(rid, {"loss": 1.0}, step=step)
            longest = max(longest, time.perf_counter() - t)
            if step % 50 == 0:
                time.sleep(0.05)  # a training step's worth of work
        assert longest < 0.5, f"log_metrics waited {longest:.2f} s"
        ob.flush()
        assert ob.metrics(rid, keys=["loss"], max_points=100_000)["loss"]["steps"] == list(range(300))
        ob.finish(rid)
    finally:
        ob.close()
        proxy.close()


def test_a_fast_loop_still_sends_big_batches(live_stack: Stack) -> None:
    """20,000 points logged as fast as Python goes: about 20 POSTs of up to 1000 points, not
    one per point or per tick."""
    proxy = Proxy(live_stack.url)
    ob = optiboard.Client(proxy.url, token=live_stack.token, batch_size=1000)
    try:
        rid = ob.create_external_run("live-fast-loop", experiment="client-tests")["id"]
        for step in range(20_000):
            ob.log_metrics(rid, {"loss": 1.0}, step=step)
        ob.finish(rid)
        posts = [p for m, p, a in proxy.log if m == "POST" and p.endswith("/metrics")]
        assert 20 <= len(posts) <= 30, len(posts)
        assert len(ob.metrics(rid, keys=["loss"], max_points=100_000)["loss"]["steps"]) == 20_000
    finally:
        ob.close()
        proxy.close()


def test_flush_and_finish_give_up_within_their_timeout(live_stack: Stack) -> None:
    """The server goes away after the run was created: with the default retries a flush
    would wait ~16 s; `timeout_s` bounds it, and the error counts the unsent points."""
    proxy = Proxy(live_stack.url, only_run_creation)
    ob = optiboard.Client(proxy.url, token=live_stack.token)
    try:
        rid = ob.create_external_run("live-deadline", experiment="client-tests")["id"]
        for step in range(10):
            ob.log_metrics(rid, {"loss": 1.0}, step=step)
        for call in (lambda: ob.flush(timeout_s=2), lambda: ob.finish(rid, timeout_s=2)):
            started = time.monotonic()
            with pytest.raises(optiboard.OptiboardError) as e:
                call()
            assert time.monotonic() - started < 2 + 3
            assert str(e.value).startswith("10 metric points unsent (kept; a later flush() sends them): POST ")
            assert e.value.unsent == 10 and e.value.dropped == 0  # type: ignore[attr-defined]
        assert ob.unsent(rid) == 10
    finally:
        ob._outboxes.clear()
        ob.close()
        proxy.close()


def test_errors_and_warnings_count_right(live_stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    """The review's "0 metric points unsent: 1 metric points of run 70 refused", and its kind:
    each message says what happened to how many points, singular or plural."""
    ob = optiboard.Client(live_stack.url, token=live_stack.token)
    try:
        # refused: the run was cancelled under the script
        rid = ob.create_external_run("counts-refused", experiment="client-tests")["id"]
        ob.cancel(rid)
        with pytest.raises(optiboard.OptiboardError) as e:
            ob.log_points(rid, [("loss", 0, 1.0)])
        msg = str(e.value)
        assert msg.startswith(
            f"1 metric point refused by the server and dropped: POST /api/runs/{rid}/metrics: HTTP 409"
        )
        assert "unsent" not in msg and "points" not in msg.split(":")[0]
        assert e.value.unsent == 0 and e.value.dropped == 1  # type: ignore[attr-defined]

        # duplicates: one point the run already held
        rid = ob.create_external_run("counts-duplicate", experiment="client-tests")["id"]
        ob.log_points(rid, [("loss", 0, 1.0)])
        with caplog.at_level(logging.WARNING, logger="optiboard"):
            ob.log_points(rid, [("loss", 0, 2.0), ("loss", 1, 2.0)])
        dup = [r.getMessage() for r in caplog.records if "already existed" in r.getMessage()]
        assert len(dup) == 1 and dup[0].startswith(
            f"optiboard: 1 point sent to run {rid} already existed there (same key and step); it was ignored"
        ), dup
        ob.finish(rid)
    finally:
        ob.close()


def test_the_background_warning_counts_right(live_stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    """One point logged to a server that went away: the sender says so once, in the singular."""
    proxy = Proxy(live_stack.url, only_run_creation)
    ob = optiboard.Client(proxy.url, token=live_stack.token)
    try:
        rid = ob.create_external_run("counts-background", experiment="client-tests")["id"]
        with caplog.at_level(logging.WARNING, logger="optiboard"):
            ob.log_metrics(rid, {"loss": 1.0}, step=0)
            wait_for(lambda: any("failed" in r.getMessage() for r in caplog.records), timeout=8, what="the warning")
            time.sleep(2.5)  # more failed attempts: still one warning
        warnings = [r.getMessage() for r in caplog.records if r.name.startswith("optiboard")]
        assert len(warnings) == 1, warnings
        assert warnings[0].startswith(f"optiboard: sending metrics of run {rid} failed (POST /api/runs/{rid}/metrics:")
        assert warnings[0].endswith("; 1 point kept, retrying in the background")
    finally:
        ob._outboxes.clear()
        ob.close()
        proxy.close()


EXPLICIT = """
import atexit, sys, time
atexit.register(lambda: print("EXITED", time.monotonic(), flush=True))  # registered first: runs last
import optiboard
ob = optiboard.Client(sys.argv[1], token="x")  # end_timeout_s: 5 s
for step in range(7):
    ob.log_metrics(1, {"loss": 1.0}, step=step)
print("EXITING", time.monotonic(), flush=True)
"""


def test_the_exit_flush_is_bounded_and_says_what_was_lost() -> None:
    """A script that logs and exits without finish(): at exit its points get `end_timeout_s`
    (5 s) to go out (here to a closed port), then one warning counts them (they were lost
    without a word)."""
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(EXPLICIT), url], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    marks = dict(line.split() for line in out.stdout.splitlines() if line.startswith(("EXITING", "EXITED")))
    assert float(marks["EXITED"]) - float(marks["EXITING"]) < 5 + 3
    lost = [line for line in out.stderr.splitlines() if "not sent" in line]
    assert len(lost) == 1, out.stderr
    assert "the process exits with 7 metric points not sent after 5 s (end_timeout_s)" in lost[0]
    assert "OPTIBOARD_EXTERNAL_IDLE_TIMEOUT_S" in lost[0]
