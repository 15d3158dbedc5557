"""`Client`: one method per endpoint over httpx, one error type, and a buffer that sends logged
metric points in batches (one POST per `batch_size` points, not one per point)."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from optiboard.errors import OptiboardError

log = logging.getLogger(__name__)

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _value(v: float | str | None) -> float:
    if isinstance(v, str):
        return _NON_FINITE[v]
    return math.nan if v is None else float(v)


def _encode(points: list[dict[str, Any]]) -> bytes:
    # JSON has no NaN: null means NaN to the server. ±inf go as the Infinity literals that
    # Python's json module writes and the server's parser reads.
    for p in points:
        v = p["value"]
        if v != v:  # NaN
            p["value"] = None
    return json.dumps({"points": points}, separators=(",", ":")).encode()


class Client:
    """An authenticated connection to one optiboard server.

    `url` and `token` default to the environment variables OPTIBOARD_URL and OPTIBOARD_TOKEN.
    Metric points passed to `log_metrics` are buffered per run and sent `batch_size` at a time;
    `flush()` (and `finish()`, `close()`) send what is left.
    """

    def __init__(self, url: str | None = None, token: str | None = None, *, timeout: float = 30.0,
                 batch_size: int = 1000, transport: httpx.BaseTransport | None = None) -> None:
        url = url or os.environ.get("OPTIBOARD_URL") or "http://127.0.0.1:8000"
        token = token if token is not None else os.environ.get("OPTIBOARD_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self.batch_size = max(1, min(int(batch_size), 50_000))  # the server takes ≤ 50,000 a call
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout,
                                  transport=transport)
        self._buffers: dict[int, list[dict[str, Any]]] = {}

    # --- plumbing -------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            r = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            raise OptiboardError(f"{method} {path}: {e}") from e
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail")
            except ValueError:
                detail = r.text[:500]
            raise OptiboardError(f"{method} {path}: HTTP {r.status_code}: {detail}",
                                 status=r.status_code, detail=detail)
        return r

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    def close(self) -> None:
        """Send buffered points, then close the connection."""
        try:
            self.flush()
        finally:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- runs -----------------------------------------------------------------------------

    def submit(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Queue a run (a RunSpec as a dict); returns the run as stored (status queued)."""
        return self._json("POST", "/api/runs", json=dict(spec))

    def create_external_run(self, name: str, *, experiment: str = "default",
                            tags: Sequence[str] = (), notes: str = "",
                            spec: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A run that this process logs into (status running until `finish`)."""
        body = {**(spec or {}), "name": name, "experiment": experiment, "external": True,
                "tags": list(tags), "notes": notes}
        return self.submit(body)

    def get_run(self, run_id: int) -> dict[str, Any]:
        return self._json("GET", f"/api/runs/{run_id}")

    def list_runs(self, *, experiment: str | None = None, status: str | None = None,
                  tag: str | None = None, q: str | None = None, sort: str = "-created_at",
                  limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        params = {k: v for k, v in {"experiment": experiment, "status": status, "tag": tag, "q": q,
                                    "sort": sort, "limit": limit, "offset": offset}.items()
                  if v is not None}
        return self._json("GET", "/api/runs", params=params)["data"]

    def wait(self, run_id: int, *, timeout: float | None = None, poll: float = 0.5,
             max_poll: float = 5.0) -> dict[str, Any]:
        """Block until the run is succeeded, failed or cancelled; returns it. Polls quickly at
        first, then slower while nothing changes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        interval, last = poll, None
        while True:
            run = self.get_run(run_id)
            if run["status"] in TERMINAL:
                return run
            state = (run["status"], run.get("progress"))
            interval = poll if state != last else min(interval * 1.5, max_poll)
            last = state
            if deadline is not None and time.monotonic() + interval > deadline:
                raise OptiboardError(f"run {run_id} still {run['status']} after {timeout} s")
            time.sleep(interval)

    def cancel(self, run_id: int) -> dict[str, Any]:
        return self._json("POST", f"/api/runs/{run_id}/cancel")

    def finish(self, run_id: int, status: str = "succeeded", *, error: str | None = None) -> dict[str, Any]:
        """End an external run after sending its buffered points."""
        self.flush(run_id)
        return self._json("POST", f"/api/runs/{run_id}/finish", json={"status": status, "error": error})

    # --- metrics --------------------------------------------------------------------------

    def metrics(self, run_id: int, *, keys: Sequence[str] | None = None, after_step: int = -1,
                max_points: int = 1000) -> dict[str, dict[str, list[Any]]]:
        """{key: {"steps": [...], "values": [...]}}, values as floats (NaN and ±inf included)."""
        params: dict[str, Any] = {"after_step": after_step, "max_points": max_points}
        if keys:
            params["keys"] = ",".join(keys)
        body = self._json("GET", f"/api/runs/{run_id}/metrics", params=params)
        return {k: {"steps": s["steps"], "values": [_value(v) for v in s["values"]]}
                for k, s in body["series"].items()}

    def log_metrics(self, run_id: int, metrics: Mapping[str, float], *, step: int,
                    wall_time: float | None = None) -> None:
        """Buffer one step's values; a full buffer is sent as one batch."""
        wall = time.time() if wall_time is None else wall_time
        buf = self._buffers.setdefault(run_id, [])
        buf.extend({"key": k, "step": int(step), "value": float(v), "wall_time": wall}
                   for k, v in metrics.items())
        if len(buf) >= self.batch_size:
            self.flush(run_id)

    def log_points(self, run_id: int, points: Iterable[tuple[str, int, float]]) -> int:
        """Send (key, step, value) points now, in batches of `batch_size`; returns how many the
        server accepted (a repeated key and step is ignored by the server, not counted twice)."""
        wall = time.time()
        batch: list[dict[str, Any]] = []
        sent = 0
        for key, step, value in points:
            batch.append({"key": key, "step": int(step), "value": float(value), "wall_time": wall})
            if len(batch) >= self.batch_size:
                sent += self._post_points(run_id, batch)
                batch = []
        if batch:
            sent += self._post_points(run_id, batch)
        return sent

    def flush(self, run_id: int | None = None) -> None:
        """Send buffered points (of one run, or of all)."""
        for rid in [run_id] if run_id is not None else list(self._buffers):
            buf = self._buffers.pop(rid, [])
            for i in range(0, len(buf), self.batch_size):
                self._post_points(rid, buf[i:i + self.batch_size])

    def _post_points(self, run_id: int, points: list[dict[str, Any]]) -> int:
        r = self._request("POST", f"/api/runs/{run_id}/metrics", content=_encode(points),
                          headers={"Content-Type": "application/json"})
        return int(r.json()["accepted"])

    # --- variants -------------------------------------------------------------------------

    def variants(self, run_id: int) -> list[dict[str, Any]]:
        return self._json("GET", f"/api/runs/{run_id}/variants")["data"]

    def download(self, run_id: int, format: str, dest: str | os.PathLike[str]) -> Path:
        """Save the run's model of this format ("keras", "tflite-int8", ...) to dest (a file, or
        a directory to keep the server's file name)."""
        match = [v for v in self.variants(run_id) if v["format"] == format]
        if not match:
            raise OptiboardError(f"run {run_id} has no {format!r} variant", status=404)
        return self.download_variant(match[0]["id"], dest)

    def download_variant(self, variant_id: int, dest: str | os.PathLike[str]) -> Path:
        path = Path(dest)
        try:
            with self._http.stream("GET", f"/api/variants/{variant_id}/download") as r:
                if r.status_code >= 400:
                    r.read()
                    raise OptiboardError(f"download of variant {variant_id}: HTTP {r.status_code}",
                                         status=r.status_code, detail=r.text[:500])
                if path.is_dir():
                    disposition = r.headers.get("content-disposition", "")
                    name = disposition.rpartition("filename=")[2].strip('"; ') or f"variant-{variant_id}"
                    path = path / Path(name).name
                with path.open("wb") as f:
                    for chunk in r.iter_bytes():
                        f.write(chunk)
        except httpx.HTTPError as e:
            raise OptiboardError(f"download of variant {variant_id}: {e}") from e
        return path
