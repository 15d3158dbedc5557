"""Figures of docs/reliability.md section 6 that are too slow for the test suite: a run with
100,000 metric keys, a run at the key limit, and 150 slow-header + 30 slow-body connections.

Each starts a real API (uvicorn via the CLI, SQLite, a private redis-server) and prints what it
measured. The tests in tests/security check the same behaviour with smaller numbers.

    .venv/bin/python bench/hostile_input.py keys [--keys 100000]   # a run stored past the limit
    .venv/bin/python bench/hostile_input.py limit                   # 1000 keys x 100 steps
    .venv/bin/python bench/hostile_input.py slow [--seconds 45]     # slow headers and bodies
"""

from __future__ import annotations

import argparse
import select
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.security.live import LiveApi, live_api  # noqa: E402


def _timed_gets(server: LiveApi, run_id: int, paths: list[str], repeats: int) -> None:
    with server.http() as http:
        proc = psutil.Process(server.api.proc.pid)
        for path in paths:
            times, size, status = [], 0, 0
            for _ in range(repeats):
                start = time.perf_counter()
                r = http.get(f"/api/runs/{run_id}{path}")
                times.append(time.perf_counter() - start)
                size, status = len(r.content), r.status_code
            rss = max(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20
            print(
                f"GET {path[:50]:50} {status} {size:>9,} B  median {statistics.median(times) * 1000:8.1f} ms"
                f"  max {max(times) * 1000:8.1f} ms  API RSS {rss:.0f} MB"
            )


def keys(server: LiveApi, n_keys: int) -> None:
    """POST n_keys distinct keys in 50,000-point batches (refused past the limit), then the same
    keys written through the store as a run stored before the limit, and time the reads."""
    from backend.store import metrics, runs
    from backend.store.db import make_engine, make_sessionmaker, unit_of_work
    from runspec.spec import RunSpec

    with server.http() as http:
        rid = http.post("/api/runs", json={"name": "many-keys", "external": True}).json()["id"]
        for start in range(0, n_keys, 50_000):
            batch = [{"key": f"k{i:06d}", "step": 0, "value": 1.0} for i in range(start, min(n_keys, start + 50_000))]
            t = time.perf_counter()
            r = http.post(f"/api/runs/{rid}/metrics", json={"points": batch})
            print(f"POST {len(batch):,} keys: {r.status_code} in {time.perf_counter() - t:.2f} s  {r.text[:120]}")
    with unit_of_work(make_sessionmaker(make_engine(server.db))) as s:
        legacy = runs.create_run(s, spec=RunSpec(name="stored-before-the-limit", external=True)).id
        metrics.log_batch(s, run_id=legacy, points=[(f"k{i:06d}", 0, 1.0, None) for i in range(n_keys)])
    print(f"a run stored before the limit with {n_keys:,} keys:")
    _timed_gets(server, legacy, ["/metrics", "/metrics?after_step=-1", "/metrics/keys"], repeats=3)


def limit(server: LiveApi) -> None:
    names = ["loss", "val_loss", "accuracy", "val_accuracy"] + [f"layer{i:04d}/grad_norm" for i in range(996)]
    with server.http() as http:
        rid = http.post("/api/runs", json={"name": "at-limit", "external": True}).json()["id"]
        for step0 in range(0, 100, 10):
            for chunk in range(0, len(names), 250):
                r = http.post(
                    f"/api/runs/{rid}/metrics",
                    json={
                        "points": [
                            {"key": k, "step": s, "value": 0.5}
                            for k in names[chunk : chunk + 250]
                            for s in range(step0, step0 + 10)
                        ]
                    },
                )
                assert r.status_code == 200, r.text
        r = http.post(f"/api/runs/{rid}/metrics", json={"points": [{"key": "one-more", "step": 0, "value": 1}]})
        print(f"the 1001st key: {r.status_code} {r.json()['detail'][0]['msg']}")
    _timed_gets(
        server,
        rid,
        ["/metrics", "/metrics?after_step=50", "/metrics/keys", f"/metrics?keys={','.join(names[:50])}"],
        repeats=5,
    )


def slow(server: LiveApi, seconds: float) -> None:
    port = server.api.port
    socks: list[tuple[str, socket.socket]] = []
    for _ in range(150):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        socks.append(("slow header", s))
    for _ in range(30):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(
            (
                f"POST /api/runs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {server.token}\r\n"
                "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
            ).encode()
        )
        socks.append(("slow body", s))
    for _, s in socks:
        s.setblocking(False)
    start = time.monotonic()
    closed: dict[int, float] = {}
    next_drip = start + 1
    while time.monotonic() - start < seconds and len(closed) < len(socks):
        open_ = [s for i, (_, s) in enumerate(socks) if i not in closed]
        readable, _, _ = select.select(open_, [], [], 0.1)
        for s in readable:
            i = next(j for j, (_, t) in enumerate(socks) if t is s)
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data:
                closed[i] = time.monotonic() - start
        if time.monotonic() > next_drip:  # a header line or a body byte a second
            next_drip += 1
            for i, (kind, s) in enumerate(socks):
                if i not in closed:
                    try:
                        s.send(b"X-a: b\r\n" if kind == "slow header" else b" ")
                    except OSError:
                        closed[i] = time.monotonic() - start
    for kind in ("slow header", "slow body"):
        idx = [i for i, (k, _) in enumerate(socks) if k == kind]
        ts = [closed[i] for i in idx if i in closed]
        span = f", closed at {min(ts):.1f}-{max(ts):.1f} s" if ts else ""
        print(f"{kind}: {len(ts)}/{len(idx)} closed within {seconds:.0f} s{span}")
    for _, s in socks:
        s.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["keys", "limit", "slow"])
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, default=45)
    args = ap.parse_args()
    # The slow-connection figures measure the deadlines: the per-client bound is raised so that
    # all 180 connections are admitted (with the default 64, the rest get 503 at once).
    env = {"OPTIBOARD_MAX_CONNECTIONS_PER_CLIENT": "1000"} if args.what == "slow" else {}
    with tempfile.TemporaryDirectory(prefix="ob-hostile-") as tmp:
        gen = live_api(Path(tmp), **env)
        server = next(gen)
        try:
            if args.what == "keys":
                keys(server, args.keys)
            elif args.what == "limit":
                limit(server)
            else:
                slow(server, args.seconds)
        finally:
            gen.close()


if __name__ == "__main__":
    main()
