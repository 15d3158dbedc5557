"""`Client`: one method per endpoint over httpx, one error type, and a buffer that sends logged
metric points in batches (one POST per `batch_size` points, not one per point).

Metric points are kept until the server acknowledged them. Each batch carries an
`Idempotency-Key` (a UUID made when the batch is formed), so a batch resent after a lost reply
is answered as the first time and stores nothing twice. Network errors and 408/425/429/5xx
answers are retried with exponential backoff; `log_metrics` never raises for them (it never
sleeps either: it tries again on a later call), while `flush()`, `finish()` and `close()` retry
with sleeps and raise `OptiboardError` only when the retries are exhausted, saying how many
points are unsent (they stay buffered: a later `flush()` sends them).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import time
import unicodedata
import uuid
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from optiboard.errors import OptiboardError
from runspec.vocabulary import TERMINAL_STATUSES

log = logging.getLogger(__name__)

TERMINAL = TERMINAL_STATUSES  # the server's own vocabulary (standard library only)
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}

# What the server accepts (backend/api/schemas.py PointIn): keys of 1-200 characters from this
# set, steps 0..2**62.
KEY_MAX_CHARS = 200
MAX_STEP = 2**62
_KEY_OK = re.compile(r"^[A-Za-z0-9_.\-/ ]+$")
_KEY_BAD_CHAR = re.compile(r"[^A-Za-z0-9_.\-/ ]")
# Answers worth trying again: the request may not have been processed, or the server is
# briefly unable to (RFC 9110 §15.5.9 408, RFC 8470 425, RFC 6585 429, 5xx).
_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def _value(v: float | str | None) -> float:
    if isinstance(v, str):
        return _NON_FINITE[v]
    return math.nan if v is None else float(v)


def metric_key(name: str) -> str:
    """The form of `name` the server accepts: accents dropped (NFKD), every other character
    outside letters, digits and `_ . - /` space replaced by `_`, cut to 200 characters
    (`"top@3"` → `"top_3"`, `"précision"` → `"precision"`). Raises ValueError for a name that
    has nothing left (empty)."""
    if _KEY_OK.match(name) and len(name) <= KEY_MAX_CHARS:
        return name
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    key = _KEY_BAD_CHAR.sub("_", ascii_name)[:KEY_MAX_CHARS]
    if not key.strip("_ "):
        raise ValueError(f"metric name {name!r} has no letter or digit the server accepts")
    return key


def _encode(points: Sequence[tuple[str, int, float, float]]) -> bytes:
    # JSON has no NaN: null means NaN to the server. ±inf go as the Infinity literals that
    # Python's json module writes and the server's parser reads.
    body = [{"key": k, "step": s, "value": None if v != v else v, "wall_time": w} for k, s, v, w in points]
    return json.dumps({"points": body}, separators=(",", ":")).encode()


@dataclass
class _Batch:
    points: list[tuple[str, int, float, float]]
    key: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass
class _Outbox:
    """One run's points not yet acknowledged: `open` (being filled) and sealed batches, each
    with its idempotency key, sent in order."""

    open: list[tuple[str, int, float, float]] = field(default_factory=list)
    sealed: deque[_Batch] = field(default_factory=deque)
    failures: int = 0  # consecutive failed attempts
    retry_at: float = 0.0  # monotonic time before which log_metrics does not try again
    duplicate_warned: bool = False

    def size(self) -> int:
        return len(self.open) + sum(len(b.points) for b in self.sealed)


class _Refused(Exception):
    """The server answered a batch with a refusal that sending again cannot change."""

    def __init__(self, error: OptiboardError) -> None:
        super().__init__(str(error))
        self.error = error


class Client:
    """An authenticated connection to one optiboard server.

    `url` and `token` default to the environment variables OPTIBOARD_URL and OPTIBOARD_TOKEN.
    Metric points passed to `log_metrics` are buffered per run and sent `batch_size` at a time;
    `flush()` (and `finish()`, `close()`) send what is left.

    Retries: a metric batch, `finish` and every GET are retried on network errors and on
    408/425/429/5xx answers, `retries` times after the first attempt, waiting `backoff_s`,
    then twice as long each time (capped at `max_backoff_s`, ±25 % jitter; a `Retry-After`
    answer is honoured up to the cap). With the defaults (5 retries, 0.5 s) a flush waits up to
    ~16 s for a server that is restarting. At most `max_buffered_points` points are kept per
    client; beyond that the oldest batch is dropped with a warning and counted in `dropped`.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        batch_size: int = 1000,
        retries: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        max_buffered_points: int = 1_000_000,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        url = url or os.environ.get("OPTIBOARD_URL") or "http://127.0.0.1:8000"
        token = token if token is not None else os.environ.get("OPTIBOARD_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self.batch_size = max(1, min(int(batch_size), 50_000))  # the server takes ≤ 50,000 a call
        self.retries = max(0, int(retries))
        self.backoff_s, self.max_backoff_s = max(0.0, float(backoff_s)), max(0.0, float(max_backoff_s))
        self.max_buffered_points = max(self.batch_size, int(max_buffered_points))
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport)
        self._outboxes: dict[int, _Outbox] = {}
        self._keys: dict[str, str] = {}  # metric name → the key it is stored under
        self._key_owner: dict[str, str] = {}  # key → the name that first took it
        self._skipped: set[str] = set()  # names already warned about and skipped
        self._warned: set[tuple[str, str]] = set()
        self.dropped = 0  # points dropped: refused by the server, or over max_buffered_points

    # --- plumbing -------------------------------------------------------------------------

    def _delay(self, attempt: int, response: httpx.Response | None = None) -> float:
        """Seconds to wait before retry number `attempt` (1, 2, ...)."""
        if response is not None and (after := response.headers.get("retry-after", "")).isdigit():
            return min(float(after), self.max_backoff_s)
        base = min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s)
        return base * random.uniform(0.75, 1.25)

    @staticmethod
    def _error(method: str, path: str, r: httpx.Response) -> OptiboardError:
        try:
            detail = r.json().get("detail")
        except (ValueError, AttributeError):
            detail = r.text[:500]
        return OptiboardError(f"{method} {path}: HTTP {r.status_code}: {detail}", status=r.status_code, detail=detail)

    def _request(self, method: str, path: str, *, retry: bool | None = None, **kwargs: Any) -> httpx.Response:
        """One request; with `retry` (default: GET only, the idempotent reads) transient
        failures are retried with backoff before raising."""
        attempts = 1 + (self.retries if (retry if retry is not None else method == "GET") else 0)
        for attempt in range(1, attempts + 1):
            response = None
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.HTTPError as e:
                error = OptiboardError(f"{method} {path}: {type(e).__name__}: {e}")
                error.__cause__ = e
            else:
                if response.status_code < 400:
                    return response
                error = self._error(method, path, response)
                if response.status_code not in _TRANSIENT_STATUS:
                    raise error
            if attempt == attempts:
                raise error
            time.sleep(self._delay(attempt, response))
        raise AssertionError("unreachable")

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    def close(self) -> None:
        """Send buffered points (retrying as `flush` does), then close the connection."""
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

    def create_external_run(
        self,
        name: str,
        *,
        experiment: str = "default",
        tags: Sequence[str] = (),
        notes: str = "",
        spec: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A run that this process logs into (status running until `finish`; the server ends
        it `failed` when it receives nothing for OPTIBOARD_EXTERNAL_IDLE_TIMEOUT_S, 1 h by
        default)."""
        body = {
            **(spec or {}),
            "name": name,
            "experiment": experiment,
            "external": True,
            "tags": list(tags),
            "notes": notes,
        }
        return self.submit(body)

    def get_run(self, run_id: int) -> dict[str, Any]:
        return self._json("GET", f"/api/runs/{run_id}")

    def list_runs(
        self,
        *,
        experiment: str | None = None,
        status: str | None = None,
        tag: str | None = None,
        q: str | None = None,
        sort: str = "-created_at",
        limit: int = 50,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        params = {
            k: v
            for k, v in {
                "experiment": experiment,
                "status": status,
                "tag": tag,
                "q": q,
                "sort": sort,
                "limit": limit,
                "offset": offset,
            }.items()
            if v is not None
        }
        return self._json("GET", "/api/runs", params=params)["data"]

    def wait(
        self, run_id: int, *, timeout: float | None = None, poll: float = 0.5, max_poll: float = 5.0
    ) -> dict[str, Any]:
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
        """End an external run after sending its buffered points (retrying as `flush` does).

        Raises OptiboardError when points stay unsent after the retries (the run is then NOT
        finished: call `finish` again, or `finish(run_id, "failed", ...)`), or when the server
        refuses the finish. A finish whose reply was lost is recognised on the retry (the run
        already has the requested status) and returns the run."""
        self.flush(run_id)
        body = {"status": status, "error": error}
        try:
            return self._json("POST", f"/api/runs/{run_id}/finish", json=body, retry=True)
        except OptiboardError as e:
            if e.status == 409:
                run = self.get_run(run_id)
                if run["status"] == status:
                    return run
            raise

    # --- metrics --------------------------------------------------------------------------

    def metrics(
        self, run_id: int, *, keys: Sequence[str] | None = None, after_step: int = -1, max_points: int = 1000
    ) -> dict[str, dict[str, list[Any]]]:
        """{key: {"steps": [...], "values": [...]}}, values as floats (NaN and ±inf included)."""
        params: dict[str, Any] = {"after_step": after_step, "max_points": max_points}
        if keys:
            params["keys"] = ",".join(keys)
        body = self._json("GET", f"/api/runs/{run_id}/metrics", params=params)
        return {k: {"steps": s["steps"], "values": [_value(v) for v in s["values"]]} for k, s in body["series"].items()}

    def last_step(self, run_id: int) -> int:
        """The largest step the run holds a point at, over all keys (-1 for none): where a
        resumed script continues its step counter (`step = last_step + 1`)."""
        body = self._json("GET", f"/api/runs/{run_id}/metrics", params={"max_points": 4})
        return int(body["last_step"])

    def _key(self, name: Any) -> str | None:
        """The key `name` is stored under, or None (skipped); warns once per name."""
        name = str(name)
        key = self._keys.get(name)
        if key is not None or name in self._skipped:
            return key
        try:
            key = metric_key(name)
        except ValueError as e:
            self._skipped.add(name)
            log.warning("optiboard: %s; its values are not logged", e)
            return None
        owner = self._key_owner.setdefault(key, name)
        if owner != name:
            self._skipped.add(name)
            log.warning(
                "optiboard: metric %r would be stored as %r, which %r already uses; its "
                "values are not logged (rename the metric)",
                name,
                key,
                owner,
            )
            return None
        if key != name:
            log.warning(
                "optiboard: metric %r is stored as %r (keys may hold letters, digits, "
                "'_', '.', '-', '/' and spaces, at most %d characters)",
                name,
                key,
                KEY_MAX_CHARS,
            )
        self._keys[name] = key
        return key

    def _points(self, items: Iterable[tuple[Any, Any, Any]], wall: float) -> list[tuple[str, int, float, float]]:
        """(key, step, value) → points the server accepts; the others are skipped with one
        warning per kind of problem (never an exception: logging never stops training)."""
        out = []
        for name, step, value in items:
            key = self._key(name)
            if key is None:
                continue
            try:
                v, s = float(value), int(step)
            except (TypeError, ValueError, OverflowError):
                if ("value", key) not in self._warned:
                    self._warned.add(("value", key))
                    log.warning(
                        "optiboard: metric %r got a value that is not a number (%r); such values are not logged",
                        key,
                        value if not hasattr(value, "shape") else f"array of shape {value.shape}",
                    )
                continue
            if not 0 <= s <= MAX_STEP:
                if ("step", key) not in self._warned:
                    self._warned.add(("step", key))
                    log.warning(
                        "optiboard: metric %r logged at step %d, outside 0..2**62; such points are not logged", key, s
                    )
                continue
            out.append((key, s, v, wall))
        return out

    def log_metrics(
        self, run_id: int, metrics: Mapping[str, Any], *, step: int, wall_time: float | None = None
    ) -> None:
        """Buffer one step's values; a full buffer is sent as one batch.

        Never raises for a logging problem: a name the server would refuse is stored under
        `metric_key(name)` (one warning), a value that is not a number is skipped (one warning),
        and a batch the network or the server could not take stays buffered and is tried again
        on a later call (after a backoff) or by `flush()`."""
        wall = time.time() if wall_time is None else float(wall_time)
        box = self._outboxes.setdefault(run_id, _Outbox())
        box.open.extend(self._points(((k, step, v) for k, v in metrics.items()), wall))
        if len(box.open) >= self.batch_size:
            self._seal(box)
            if time.monotonic() >= box.retry_at:
                try:
                    self._send_pending(run_id, box, sleep=False)
                except OptiboardError:  # refused for good: _send_pending warned and counted it
                    pass

    def log_points(self, run_id: int, points: Iterable[tuple[str, int, float]]) -> int:
        """Send (key, step, value) points now, in batches of `batch_size`, retrying as `flush`
        does; returns how many the server stored (a (key, step) the run already holds is
        ignored, first write wins, and not counted). Raises OptiboardError when points stay
        unsent after the retries, or the server refuses them."""
        wall = time.time()
        box = self._outboxes.setdefault(run_id, _Outbox())
        self._seal(box)
        pts = self._points(points, wall)
        for i in range(0, len(pts), self.batch_size):
            box.sealed.append(_Batch(pts[i : i + self.batch_size]))
        self._bound()
        return self._send_pending(run_id, box, sleep=True)

    def flush(self, run_id: int | None = None) -> None:
        """Send buffered points (of one run, or of all), retrying with backoff. Raises
        OptiboardError when points stay unsent after the retries or are refused; its message
        says how many points are unsent, and `unsent` holds the number. Unsent points stay
        buffered unless the server refused them for good (e.g. the run has ended: 409)."""
        errors: list[OptiboardError] = []
        for rid in [run_id] if run_id is not None else list(self._outboxes):
            box = self._outboxes.get(rid)
            if box is None:
                continue
            self._seal(box)
            try:
                self._send_pending(rid, box, sleep=True)
            except OptiboardError as e:
                errors.append(e)
            if not box.size():
                self._outboxes.pop(rid, None)
        if errors:
            unsent = self.unsent()
            first = errors[0]
            error = OptiboardError(f"{unsent} metric points unsent: {first}", status=first.status, detail=first.detail)
            error.unsent = unsent  # type: ignore[attr-defined]
            raise error from first

    def unsent(self, run_id: int | None = None) -> int:
        """Points buffered and not yet acknowledged by the server (of one run, or of all)."""
        boxes = [self._outboxes.get(run_id)] if run_id is not None else list(self._outboxes.values())
        return sum(b.size() for b in boxes if b is not None)

    def _seal(self, box: _Outbox) -> None:
        while box.open:
            box.sealed.append(_Batch(box.open[: self.batch_size]))
            del box.open[: self.batch_size]
        self._bound()

    def _bound(self) -> None:
        """Memory stays bounded while the server is unreachable: drop the oldest batches."""
        total = self.unsent()
        while total > self.max_buffered_points:
            box = max(self._outboxes.values(), key=lambda b: len(b.sealed))
            if not box.sealed:
                break
            batch = box.sealed.popleft()
            total -= len(batch.points)
            self.dropped += len(batch.points)
            log.warning(
                "optiboard: more than %d points unsent; dropped the oldest %d (%d dropped so far)",
                self.max_buffered_points,
                len(batch.points),
                self.dropped,
            )

    def _send_pending(self, run_id: int, box: _Outbox, *, sleep: bool) -> int:
        """Send the sealed batches in order. Without `sleep`, stop at the first transient
        failure and set the next attempt's time; with it, retry each batch up to `retries`
        times. Returns the points stored. Raises OptiboardError (with sleep) when a batch stays
        unsent, or when the server refuses one for good (then it is dropped)."""
        stored = 0
        while box.sealed:
            batch = box.sealed[0]
            try:
                answer = self._post_batch(run_id, batch, box, sleep=sleep)
            except _Refused as e:
                if e.error.status in (404, 409):  # the run takes no points at all any more
                    dropped = box.size()
                    box.sealed.clear()
                    box.open.clear()
                else:  # this batch cannot be stored as it is
                    dropped = len(box.sealed.popleft().points)
                self.dropped += dropped
                log.warning(
                    "optiboard: the server refused metric points of run %s for good; %d dropped: %s",
                    run_id,
                    dropped,
                    e.error,
                )
                raise OptiboardError(
                    f"{dropped} metric points of run {run_id} refused: {e.error}",
                    status=e.error.status,
                    detail=e.error.detail,
                ) from e.error
            except OptiboardError:
                if sleep:
                    raise
                return stored
            box.sealed.popleft()
            stored += answer["accepted"]
            if answer.get("duplicates") and not answer.get("replayed") and not box.duplicate_warned:
                box.duplicate_warned = True
                log.warning(
                    "optiboard: run %s already held %d of these points at the same key and "
                    "step; they were ignored (first write wins). Resuming a run? Continue "
                    "its step counter: Client.last_step(run_id) + 1",
                    run_id,
                    answer["duplicates"],
                )
        return stored

    def _post_batch(self, run_id: int, batch: _Batch, box: _Outbox, *, sleep: bool) -> dict[str, Any]:
        path = f"/api/runs/{run_id}/metrics"
        attempts = 1 + (self.retries if sleep else 0)
        error: OptiboardError | None = None
        for attempt in range(1, attempts + 1):
            response = None
            try:
                response = self._http.post(
                    path,
                    content=_encode(batch.points),
                    headers={"Content-Type": "application/json", "Idempotency-Key": batch.key},
                )
            except httpx.HTTPError as e:
                error = OptiboardError(f"POST {path}: {type(e).__name__}: {e}")
            else:
                if response.status_code < 400:
                    box.failures, box.retry_at = 0, 0.0
                    body = response.json()
                    return {
                        "accepted": int(body["accepted"]),
                        "duplicates": int(body.get("duplicates", 0)),
                        "replayed": bool(body.get("replayed", False)),
                    }
                error = self._error("POST", path, response)
                if response.status_code == 413 and len(batch.points) > 1:
                    # too large for the server: refused whole, so two new batches are safe
                    half = len(batch.points) // 2
                    box.sealed.popleft()
                    box.sealed.extendleft([_Batch(batch.points[half:]), _Batch(batch.points[:half])])
                    return self._post_batch(run_id, box.sealed[0], box, sleep=sleep)
                if response.status_code == 422 and self._drop_invalid(batch, error):
                    return self._post_batch(run_id, batch, box, sleep=sleep)
                if response.status_code not in _TRANSIENT_STATUS:
                    if response.status_code in (404, 409, 413, 422):
                        raise _Refused(error)
                    raise error  # 401/403 and the like: kept, a later flush may succeed
            box.failures += 1
            delay = self._delay(box.failures, response)
            if box.failures == 1:
                log.warning(
                    "optiboard: sending metrics of run %s failed (%s); %d points kept, retrying",
                    run_id,
                    error,
                    self.unsent(run_id),
                )
            if attempt < attempts:
                time.sleep(delay)
            else:
                box.retry_at = time.monotonic() + delay
        assert error is not None
        raise OptiboardError(
            f"{error} (after {attempts} attempt{'s' if attempts > 1 else ''})", status=error.status, detail=error.detail
        )

    def _drop_invalid(self, batch: _Batch, error: OptiboardError) -> bool:
        """A 422 names the points it refused (["body", "points", i, field]): drop those with
        a warning so the rest is stored. False when it names none (nothing to drop)."""
        bad = set()
        for item in error.detail if isinstance(error.detail, list) else []:
            loc = item.get("loc", []) if isinstance(item, dict) else []
            if len(loc) >= 3 and loc[:2] == ["body", "points"] and isinstance(loc[2], int):
                bad.add(loc[2])
        bad = {i for i in bad if 0 <= i < len(batch.points)}
        if not bad:
            return False
        self.dropped += len(bad)
        log.warning(
            "optiboard: the server refused %d points (%s); the other %d are sent",
            len(bad),
            error,
            len(batch.points) - len(bad),
        )
        batch.points = [p for i, p in enumerate(batch.points) if i not in bad]
        batch.key = uuid.uuid4().hex  # a different body: the refused one stored nothing
        return bool(batch.points)

    # --- uploaded models --------------------------------------------------------------------

    def upload_model(
        self, path: str | os.PathLike[str], *, name: str | None = None, timeout: float = 300.0
    ) -> dict[str, Any]:
        """Upload a model file (a Keras v3 `.keras` from Keras 3 or tf-keras, a SavedModel
        directory as `.zip`, or a `.tflite`); returns the stored model with its preflight (see
        `get_model`). The server loads it in a sandbox before answering, hence the longer
        `timeout` (seconds). Raises OptiboardError: 422 with `detail[i]["loc"]` naming the
        member or layer refused (e.g. ["body", "file", "config.json", "layers", 3]), 413 over
        the size limits. Not retried (an upload is not idempotent)."""
        file = Path(path)
        with file.open("rb") as f:
            data = {"name": name} if name else None
            return self._json("POST", "/api/models", files={"file": (file.name, f)}, data=data, timeout=timeout)

    def get_model(self, model_id: int) -> dict[str, Any]:
        """An uploaded model: id, name, original_filename, sha256, size_bytes, format (keras,
        saved_model, tflite), keras_flavour (keras3, tf_keras or None), status and preflight (kind,
        inputs, outputs, params, nested_models, layers with per-technique {status, note},
        techniques)."""
        return self._json("GET", f"/api/models/{model_id}")

    def list_models(self) -> list[dict[str, Any]]:
        """Every uploaded model, newest first (as `get_model` returns each)."""
        return self._json("GET", "/api/models")["data"]

    def delete_model(self, model_id: int) -> None:
        """Delete an uploaded model and its file."""
        self._request("DELETE", f"/api/models/{model_id}")

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
                    raise OptiboardError(
                        f"download of variant {variant_id}: HTTP {r.status_code}",
                        status=r.status_code,
                        detail=r.text[:500],
                    )
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
