"""Issue 14 fault 5: the client keeps metric points until the server acknowledged them, across
real network failures made by a TCP proxy between it and the real API (tests/client/netproxy):
a refused POST, a reply lost after the server stored the batch, a server unreachable for
longer than the retries. Also what the server's `accepted` count means."""

from __future__ import annotations

import logging

import httpx
import pytest

import optiboard
from optiboard.client import metric_key
from tests.client.netproxy import DROP_REPLY, PASS, RESET, Proxy
from tests.conftest import Stack
from tests.stack import wait_for


class FailFirst:
    """RESET or DROP_REPLY the first `n` metric POSTs, pass everything else."""

    def __init__(self, action: str, n: int = 1) -> None:
        self.action, self.left = action, n

    def __call__(self, method: str, path: str) -> str:
        if method == "POST" and path.endswith("/metrics") and self.left > 0:
            self.left -= 1
            return self.action
        return PASS


def _client(url: str, token: str, **kw: object) -> optiboard.Client:
    return optiboard.Client(url, token=token, backoff_s=0.05, max_backoff_s=0.2, **kw)  # type: ignore[arg-type]


def _stored_steps(live_stack: Stack, rid: int) -> list[int]:
    with _client(live_stack.url, live_stack.token) as direct:
        return direct.metrics(rid, keys=["loss"], max_points=100_000).get("loss", {}).get("steps", [])


def test_a_refused_post_loses_no_point(live_stack: Stack) -> None:
    """The issue's case: batch_size 100, 250 log_metrics calls, the first metrics POST refused
    by the network, then flush(): every step 0..249 is stored (was 150 of 250)."""
    proxy = Proxy(live_stack.url, FailFirst(RESET))
    ob = _client(proxy.url, live_stack.token, batch_size=100)
    try:
        rid = ob.create_external_run("net-refused", experiment="client-tests")["id"]
        for step in range(250):
            ob.log_metrics(rid, {"loss": 1.0 / (step + 1)}, step=step)  # never raises
        ob.flush()
        assert ob.unsent() == 0
        assert _stored_steps(live_stack, rid) == list(range(250))
        assert [a for m, p, a in proxy.log if p.endswith("/metrics")].count(RESET) == 1
        ob.finish(rid)
    finally:
        ob.close()
        proxy.close()


def test_a_lost_reply_is_resent_and_counted_once(live_stack: Stack) -> None:
    """The server stores a batch but its reply is lost: the resend carries the same
    Idempotency-Key, stores nothing twice and is answered as the first time, so the client's
    count is exact (without the key the resend would count its 100 points as duplicates)."""
    proxy = Proxy(live_stack.url, FailFirst(DROP_REPLY))
    ob = _client(proxy.url, live_stack.token, batch_size=100)
    try:
        rid = ob.create_external_run("net-lost-reply", experiment="client-tests")["id"]
        assert ob.log_points(rid, [("loss", s, float(s)) for s in range(250)]) == 250
        actions = [a for m, p, a in proxy.log if p.endswith("/metrics")]
        assert actions == [DROP_REPLY, PASS, PASS, PASS]
        assert _stored_steps(live_stack, rid) == list(range(250))
        ob.finish(rid)
    finally:
        ob.close()
        proxy.close()


def test_flush_raises_after_retries_saying_how_many_are_unsent(live_stack: Stack) -> None:
    """Server unreachable for longer than the retries: log_metrics never raises, flush()
    raises after retries+1 attempts naming the unsent count; the points stay and a later
    flush sends them all."""
    down = {"on": True}
    proxy = Proxy(live_stack.url, lambda m, p: RESET if down["on"] and p.endswith("/metrics") else PASS)
    ob = _client(proxy.url, live_stack.token, batch_size=100, retries=2)
    try:
        rid = ob.create_external_run("net-down", experiment="client-tests")["id"]
        for step in range(250):
            ob.log_metrics(rid, {"loss": 1.0}, step=step)
        with pytest.raises(optiboard.OptiboardError) as e:
            ob.flush()
        assert e.value.unsent == 250 and "250 metric points unsent" in str(e.value)
        assert "after 3 attempts" in str(e.value)
        with pytest.raises(optiboard.OptiboardError, match="250 metric points unsent"):
            ob.finish(rid)  # not finished: the points would be lost
        assert ob.get_run(rid)["status"] == "running"
        down["on"] = False
        done = ob.finish(rid)
        assert done["status"] == "succeeded"
        assert _stored_steps(live_stack, rid) == list(range(250))
    finally:
        ob.close()
        proxy.close()


def test_a_lost_finish_reply_still_finishes(live_stack: Stack) -> None:
    state = {"drop": True}

    def policy(method: str, path: str) -> str:
        if path.endswith("/finish") and state["drop"]:
            state["drop"] = False
            return DROP_REPLY
        return PASS

    proxy = Proxy(live_stack.url, policy)
    ob = _client(proxy.url, live_stack.token)
    try:
        rid = ob.create_external_run("net-finish", experiment="client-tests")["id"]
        ob.log_metrics(rid, {"loss": 1.0}, step=0)
        assert ob.finish(rid)["status"] == "succeeded"  # the retry meets 409 "already succeeded"
    finally:
        ob.close()
        proxy.close()


def test_accepted_counts_points_stored_and_the_key_replays(live_stack: Stack) -> None:
    """POST /api/runs/{id}/metrics: `accepted` = points stored, `duplicates` = points whose
    (key, step) the run held or the batch repeated; accepted + duplicates = points sent. A
    repeated Idempotency-Key writes nothing and repeats the first answer."""
    http = httpx.Client(base_url=live_stack.url, headers={"Authorization": f"Bearer {live_stack.token}"})
    ob = _client(live_stack.url, live_stack.token)
    try:
        rid = ob.create_external_run("accepted-counts", experiment="client-tests")["id"]
        pts = [{"key": "loss", "step": s, "value": 1.0} for s in range(5)]
        r = http.post(f"/api/runs/{rid}/metrics", json={"points": pts})
        assert r.json() == {"accepted": 5, "duplicates": 0, "replayed": False}
        again = pts[3:] + [{"key": "loss", "step": 5, "value": 2.0}, {"key": "loss", "step": 5, "value": 3.0}]
        r = http.post(f"/api/runs/{rid}/metrics", json={"points": again}, headers={"Idempotency-Key": "b-1"})
        assert r.json() == {"accepted": 1, "duplicates": 3, "replayed": False}
        more = [{"key": "loss", "step": 6, "value": 1.0}]
        r = http.post(f"/api/runs/{rid}/metrics", json={"points": more}, headers={"Idempotency-Key": "b-1"})
        assert r.json() == {"accepted": 1, "duplicates": 3, "replayed": True}  # not stored
        assert _stored_steps(live_stack, rid) == [0, 1, 2, 3, 4, 5]
        # the key is per run
        other = ob.create_external_run("accepted-other", experiment="client-tests")["id"]
        r = http.post(f"/api/runs/{other}/metrics", json={"points": more}, headers={"Idempotency-Key": "b-1"})
        assert r.json() == {"accepted": 1, "duplicates": 0, "replayed": False}
        r = http.post(f"/api/runs/{rid}/metrics", json={"points": more}, headers={"Idempotency-Key": "no spaces"})
        assert r.status_code == 422 and "idempotency-key" in r.text.lower()
        ob.finish(rid)
        ob.finish(other)
    finally:
        http.close()
        ob.close()


def test_names_the_server_refuses_are_mapped_not_lost(live_stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    ob = _client(live_stack.url, live_stack.token, batch_size=10)
    try:
        rid = ob.create_external_run("client-keys", experiment="client-tests")["id"]
        with caplog.at_level(logging.WARNING, logger="optiboard"):
            for step in range(30):
                ob.log_metrics(
                    rid,
                    {
                        "top@3": 0.5,
                        "précision": 0.25,
                        "loss": 1.0,
                        "x" * 300 + "a": 2.0,
                        "x" * 300 + "b": 3.0,
                        "@@@": 1.0,
                        "text": "n/a",
                        "精度": 0.75,
                        "召回": 0.5,
                        "acc\n": 0.125,
                    },
                    step=step,
                )
            ob.finish(rid)
        series = ob.metrics(rid, max_points=100_000)
        long_a, long_b = metric_key("x" * 300 + "a"), metric_key("x" * 300 + "b")
        # two long names that differ only at their ends stay two keys (both were "x" * 200 and
        # the second was dropped); CJK names keep their letters as code points (both were "__",
        # the first skipped, the second refused); a name ending in a newline passed the
        # client's `$` check and every one of its points was refused by the server
        assert long_a != long_b and len(long_a) == len(long_b) == 200 and long_a.startswith("x" * 191 + "-")
        assert sorted(series) == sorted(
            ["loss", "precision", "top_3", long_a, long_b, "u7cbeu5ea6", "u53ecu56de", "acc_"]
        )
        assert all(len(s["steps"]) == 30 for s in series.values())
        assert series["u7cbeu5ea6"]["values"] == [0.75] * 30 and series["acc_"]["values"] == [0.125] * 30
        assert series[long_b]["values"] == [3.0] * 30
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 9, warnings  # one per name: all but loss
        assert any("'top@3' is stored as 'top_3'" in w for w in warnings)
        assert any("'@@@'" in w for w in warnings) and any("'text'" in w for w in warnings)
        assert not any("refused" in w for w in warnings), warnings
    finally:
        ob.close()


def test_log_metrics_never_raises_when_the_run_ends_under_it(
    live_stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    ob = _client(live_stack.url, live_stack.token, batch_size=10)
    try:
        rid = ob.create_external_run("client-ended", experiment="client-tests")["id"]
        ob.log_metrics(rid, {"loss": 1.0}, step=0)
        ob.cancel(rid)
        with caplog.at_level(logging.WARNING, logger="optiboard"):
            for step in range(1, 50):
                ob.log_metrics(rid, {"loss": 1.0}, step=step)  # the sender meets 409s: no raise
            wait_for(lambda: ob.unsent(rid) == 0, timeout=10, what="the sender to drop the refused points")
        assert any("cancelled" in r.getMessage() for r in caplog.records)
        assert ob.dropped >= 49  # step 0 may have gone out before the cancel
    finally:
        ob._outboxes.clear()
        ob.close()


def test_a_wall_time_in_milliseconds_loses_no_point(live_stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    """`wall_time=time.time() * 1000` (milliseconds, a common slip): the server refuses a
    wall_time past 1e11 s, so every point was refused and dropped. Now the points are stored at
    the time of logging, with one warning."""
    import time

    ob = _client(live_stack.url, live_stack.token)
    try:
        rid = ob.create_external_run("wall-ms", experiment="client-tests")["id"]
        before = time.time()
        with caplog.at_level(logging.WARNING, logger="optiboard"):
            for step in range(5):
                ob.log_metrics(rid, {"loss": 1.0 / (step + 1)}, step=step, wall_time=time.time() * 1000)
            ob.log_metrics(rid, {"loss": 0.1}, step=5, wall_time="soon")  # type: ignore[arg-type]
            ob.finish(rid)
        assert _stored_steps(live_stack, rid) == list(range(6))
        with _client(live_stack.url, live_stack.token) as direct:
            r = direct._http.get(f"/api/runs/{rid}/metrics/times", params={"key": "loss"})
        assert all(before - 1 <= w <= time.time() + 1 for w in r.json()["wall_times"])
        warnings = [m.getMessage() for m in caplog.records if m.levelno == logging.WARNING]
        assert len(warnings) == 1 and "milliseconds?" in warnings[0], warnings
    finally:
        ob.close()
