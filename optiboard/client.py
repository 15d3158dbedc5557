"""`Client`: one method per endpoint over httpx, one error type, and a buffer that sends logged
metric points in batches from a background thread.

`log_metrics` only buffers: it never waits on the network and never raises for it. A sender
thread (started by the first `log_metrics`) sends what is buffered at least every
`flush_interval_s` (1 s), and at once when a run has `batch_size` points waiting, so curves
grow while a script trains and a fast loop still sends big batches (one POST per up to
`batch_size` points, not one per point).

Metric points are kept until the server acknowledged them. Each batch carries an
`Idempotency-Key` (a UUID made when the batch is formed), so a batch resent after a lost reply
is answered as the first time and stores nothing twice. Network errors and 408/425/429/5xx
answers are retried with exponential backoff: by the sender thread without end (one warning
per failure streak), and by `flush()`, `finish()` and `close()` with sleeps, which raise
`OptiboardError` when the retries or their `timeout_s` run out, saying how many points are
unsent (they stay buffered: a later `flush()` sends them). At interpreter exit buffered points
get at most `end_timeout_s` (5 s) to go out.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import math
import os
import random
import re
import threading
import time
import unicodedata
import uuid
import weakref
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
MAX_WALL_TIME = 1e11  # s since the Unix epoch (year 5138): a time in ms is refused
_KEY_OK = re.compile(r"[A-Za-z0-9_.\-/ ]+")  # with fullmatch: `$` would let a final newline through
# Answers worth trying again: the request may not have been processed, or the server is
# briefly unable to (RFC 9110 §15.5.9 408, RFC 8470 425, RFC 6585 429, 5xx).
_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def count(n: int, noun: str) -> str:
    """`count(1, "metric point")` → "1 metric point", `count(3, "point")` → "3 points"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _value(v: float | str | None) -> float:
    if isinstance(v, str):
        return _NON_FINITE[v]
    return math.nan if v is None else float(v)


def _ascii_char(c: str) -> str:
    """One character of a NFKD-normalised name in the server's alphabet: itself if accepted,
    nothing for a combining accent, `u<hex>` for another letter or digit (so `精度` and `召回`
    stay two keys), `_` for anything else."""
    if _KEY_OK.fullmatch(c):
        return c
    if unicodedata.combining(c):
        return ""
    if unicodedata.category(c)[0] in "LN":
        return f"u{ord(c):04x}"
    return "_"


def metric_key(name: str) -> str:
    """The form of `name` the server accepts: accents dropped (NFKD), any other letter or
    digit outside ASCII written as `u` and its code point in hex, every other character outside
    letters, digits and `_ . - /` space replaced by `_`; a name longer than 200 characters is cut
    to 191 and ends in `-` and 8 hex digits of its SHA-1, so long names stay distinct (`"top@3"` →
    `"top_3"`, `"précision"` → `"precision"`, `"精度"` → `"u7cbeu5ea6"`, `"loss\n"` →
    `"loss_"`). Raises ValueError for a name that has nothing left (empty, or only `_` and
    spaces)."""
    if _KEY_OK.fullmatch(name) and len(name) <= KEY_MAX_CHARS:
        return name
    key = "".join(_ascii_char(c) for c in unicodedata.normalize("NFKD", name))
    if len(key) > KEY_MAX_CHARS:  # two long names that differ only at their ends stay two keys
        key = f"{key[: KEY_MAX_CHARS - 9]}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"
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
    tried: bool = False  # sent at least once: its points and key never change again


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


class _TooLarge(Exception):
    """413: the server refused the batch whole for its size; two halves are safe to send."""


_clients: weakref.WeakSet[Client] = weakref.WeakSet()


def _flush_at_exit() -> None:
    for client in list(_clients):
        client._at_exit()


def _after_fork_in_child() -> None:
    # a lock held by the parent's sender thread at fork time would stay held in the child
    for client in list(_clients):
        client._new_locks()


atexit.register(_flush_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Client:
    """An authenticated connection to one optiboard server.

    `url` and `token` default to the environment variables OPTIBOARD_URL and OPTIBOARD_TOKEN.
    `timeout` (s, default 30) bounds each HTTP request.

    Metric points passed to `log_metrics` are buffered per run; a sender thread sends them at
    least every `flush_interval_s` (s, default 1.0) and as soon as a run has `batch_size`
    (default 1000) points waiting, never more than `batch_size` points in one POST.
    `flush()` (and `finish()`, `close()`) send what is left and wait for the answer.

    Retries: a metric batch, `finish` and every GET are retried on network errors and on
    408/425/429/5xx answers, `retries` (default 5) times after the first attempt, waiting
    `backoff_s` (s, default 0.5), then twice as long each time (capped at `max_backoff_s`, s,
    default 30; ±25 % jitter; a `Retry-After` answer is honoured up to the cap). With the
    defaults a `flush()` without `timeout_s` waits up to ~16 s for a server that is restarting.
    The sender thread retries on its own with the same backoff, without end.

    `end_timeout_s` (s, default 5.0) bounds what the end of a script waits for the server: at
    interpreter exit buffered points get that long to go out (one warning says how many did
    not), and `OptiboardCallback` gives the final flush and finish of a run that long.

    At most `max_buffered_points` points are kept per client; beyond that the oldest batch is
    dropped with a warning and counted in `dropped`.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        batch_size: int = 1000,
        flush_interval_s: float = 1.0,
        end_timeout_s: float = 5.0,
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
        self.timeout = float(timeout)
        self.batch_size = max(1, min(int(batch_size), 50_000))  # the server takes ≤ 50,000 a call
        self.flush_interval_s = max(0.01, float(flush_interval_s))
        self.end_timeout_s = max(0.0, float(end_timeout_s))
        self.retries = max(0, int(retries))
        self.backoff_s, self.max_backoff_s = max(0.0, float(backoff_s)), max(0.0, float(max_backoff_s))
        self.max_buffered_points = max(self.batch_size, int(max_buffered_points))
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport)
        self._outboxes: dict[int, _Outbox] = {}
        self._keys: dict[str, str] = {}  # metric name → the key it is stored under
        self._key_owner: dict[str, str] = {}  # key → the name that first took it
        self._skipped: set[str] = set()  # names already warned about and skipped
        self._warned: set[tuple[str, str]] = set()
        self._stored_keys: dict[int, set[str]] = {}  # per run: keys the server acknowledged
        self._over_limit: dict[int, set[str]] = {}  # per run: keys past its metric-key limit
        self.dropped = 0  # points dropped: refused by the server, or over max_buffered_points
        self._sender: threading.Thread | None = None
        self._sender_pid = 0
        self._closing = False
        self._inflight: _Batch | None = None  # the batch a POST is under way for
        self._last_tick = time.monotonic()  # when the sender last sealed every open buffer
        self._new_locks()
        _clients.add(self)

    def _new_locks(self) -> None:
        # `_lock` guards the outboxes and is held only for list operations, never across a
        # request, so `log_metrics` never waits on the network; `_send_lock` makes sending
        # sequential (the sender thread, or a flush in the caller's thread).
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._send_lock = threading.Lock()
        self._sender = None

    # --- plumbing -------------------------------------------------------------------------

    def _delay(self, attempt: int, response: httpx.Response | None = None) -> float:
        """Seconds to wait before retry number `attempt` (1, 2, ...)."""
        if response is not None and (after := response.headers.get("retry-after", "")).isdigit():
            return min(float(after), self.max_backoff_s)
        base = min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s)
        return base * random.uniform(0.75, 1.25)

    @staticmethod
    def _deadline(timeout_s: float | None) -> float | None:
        return None if timeout_s is None else time.monotonic() + max(0.0, float(timeout_s))

    @staticmethod
    def _error(method: str, path: str, r: httpx.Response) -> OptiboardError:
        try:
            detail = r.json().get("detail")
        except (ValueError, AttributeError):
            detail = r.text[:500]
        return OptiboardError(f"{method} {path}: HTTP {r.status_code}: {detail}", status=r.status_code, detail=detail)

    def _request(
        self, method: str, path: str, *, retry: bool | None = None, deadline: float | None = None, **kwargs: Any
    ) -> httpx.Response:
        """One request; with `retry` (default: GET only, the idempotent reads) transient
        failures are retried with backoff before raising. With `deadline` (time.monotonic())
        no attempt is started, nor any wait, that would end after it."""
        attempts = 1 + (self.retries if (retry if retry is not None else method == "GET") else 0)
        error: OptiboardError | None = None
        for attempt in range(1, attempts + 1):
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                kwargs["timeout"] = min(self.timeout, left)
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
                break
            delay = self._delay(attempt, response)
            if deadline is not None and time.monotonic() + delay >= deadline:
                break
            time.sleep(delay)
        raise error or OptiboardError(f"{method} {path}: not sent, the time given ran out")

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    def close(self, *, timeout_s: float | None = None) -> None:
        """Send buffered points (retrying as `flush` does, for at most `timeout_s` seconds when
        given), then stop the sender thread and close the connection. Raises OptiboardError as
        `flush` does (the connection is closed all the same)."""
        try:
            self.flush(timeout_s=timeout_s)
        finally:
            self._stop_sender()
            self._http.close()
            _clients.discard(self)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- runs -----------------------------------------------------------------------------

    def submit(
        self, spec: Mapping[str, Any], *, repeats: int | None = None, control: bool | None = None
    ) -> dict[str, Any]:
        """Queue a run (a RunSpec as a dict); returns the run as stored (status queued).

        `repeats` N (1-20; or `repeats` in the spec) queues N runs over training seeds seed,
        seed+1, …: one seed group. The answer is then the first run, and its `group_run_ids`
        lists all N (one id without repeats).

        `control=True` (or `"control": true` in the spec) also queues each run's same-budget
        control, the run without its technique trained for the same epochs; its id is the
        run's `control_run_id` (and the control's `control_of_run_id` is the run's)."""
        body = dict(spec)
        if repeats is not None:
            body["repeats"] = repeats
        if control is not None:
            body["control"] = control
        return self._json("POST", "/api/runs", json=body)

    def compare_groups(
        self, run_ids: Sequence[int], *, baseline: int | None = None, summary: str = "best"
    ) -> dict[str, Any]:
        """The runs aggregated by seed group: GET /api/compare?groups=true's `groups`, i.e.
        {rows, baseline, metrics, difference_metrics, confidence}. Each row is one group and
        model format with, per figure (accuracy 0-1, size_bytes bytes, latency_p90_ms ms, …),
        the mean, `<figure>_n`, `_std`, `_ci_low`, `_ci_high` (95 % Student t; None for one run)
        and `differences` against the baseline's group (Welch's 95 % interval, `significant`).
        `summary` picks the logged metrics' value: best, last, min or max. Raises OptiboardError."""
        params: dict[str, Any] = {"runs": ",".join(str(int(i)) for i in run_ids), "groups": "true", "summary": summary}
        if baseline is not None:
            params["baseline"] = baseline
        return self._json("GET", "/api/compare", params=params)["groups"]

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

    def get_run(self, run_id: int, *, timeout_s: float | None = None) -> dict[str, Any]:
        """The run as stored. Retried as every GET is; with `timeout_s` (s) it gives up after
        that long. Raises OptiboardError."""
        return self._json("GET", f"/api/runs/{run_id}", deadline=self._deadline(timeout_s))

    def list_runs(
        self,
        *,
        experiment: str | None = None,
        status: str | None = None,
        tag: str | None = None,
        q: str | None = None,
        control_of: int | None = None,
        study_id: int | None = None,
        sort: str = "-created_at",
        limit: int = 50,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """One page of runs, filtered: `control_of` lists only the same-budget control of that run;
        `study_id` gives the trials of that study (each run carries `study_id` and `trial_number`)."""
        params = {
            k: v
            for k, v in {
                "experiment": experiment,
                "status": status,
                "tag": tag,
                "q": q,
                "control_of": control_of,
                "study_id": study_id,
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

    # --- studies (issue 20) ---------------------------------------------------------------

    def create_study(
        self,
        spec: Mapping[str, Any] | None = None,
        *,
        baseline_run_id: int | None = None,
        baseline_model_id: int | None = None,
        dataset: str | Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Start a study (a StudySpec as a dict: baseline_run_id or baseline_model_id,
        objectives, constraint, search_space, budget, strategy); the keyword arguments are
        merged into `spec`. With `baseline_model_id` (an uploaded model) and `dataset` (a name
        such as "digits", or a DatasetSpec dict) the server measures the model in a baseline run
        first: the study answers status queued with `note` "waiting for the baseline run N",
        and ends `failed` if that run does. Returns the study as stored. Raises OptiboardError
        (HTTP 422 names the field: both or neither baseline, a chain the model cannot take)."""
        body = dict(spec or {})
        if baseline_run_id is not None:
            body["baseline_run_id"] = int(baseline_run_id)
        if baseline_model_id is not None:
            body["baseline_model_id"] = int(baseline_model_id)
        if dataset is not None:
            body["dataset"] = {"name": dataset} if isinstance(dataset, str) else dict(dataset)
        return self._json("POST", "/api/studies", json=body)

    def list_studies(self, *, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Studies, newest first, with trial counts and budget used/left."""
        return self._json("GET", "/api/studies", params={"limit": limit, "offset": offset})["data"]

    def get_study(self, study_id: int, *, include_infeasible: bool = False) -> dict[str, Any]:
        """A study with its trials, hypervolume history, best feasible trial per objective (all
        trials with `include_infeasible`), Pareto front and budget."""
        params = {"include_infeasible": str(include_infeasible).lower()}
        return self._json("GET", f"/api/studies/{study_id}", params=params)

    def study_trials_csv(self, study_id: int, *, include_infeasible: bool = False) -> str:
        """The study's trials as CSV text (GET /api/studies/{id}/trials.csv): feasible trials
        only unless `include_infeasible`; columns number, run_id, state, feasible,
        constraint_metric, worker_seconds, pruned_reason, each objective, then the recipe."""
        params = {"include_infeasible": str(include_infeasible).lower()}
        r = self._request("GET", f"/api/studies/{study_id}/trials.csv", params=params)
        return r.text

    def pause_study(self, study_id: int) -> dict[str, Any]:
        return self._json("POST", f"/api/studies/{study_id}/pause")

    def resume_study(self, study_id: int) -> dict[str, Any]:
        return self._json("POST", f"/api/studies/{study_id}/resume")

    def stop_study(self, study_id: int) -> dict[str, Any]:
        return self._json("POST", f"/api/studies/{study_id}/stop")

    def extend_study(
        self, study_id: int, *, trials: int = 0, wall_seconds: float = 0.0, worker_minutes: float = 0.0
    ) -> dict[str, Any]:
        """Raise the study's budget by these amounts (trials, seconds, worker-minutes)."""
        body = {"trials": trials, "wall_seconds": wall_seconds, "worker_minutes": worker_minutes}
        return self._json("POST", f"/api/studies/{study_id}/extend", json=body)

    def wait_study(self, study_id: int, *, timeout: float | None = None, poll: float = 1.0) -> dict[str, Any]:
        """Block until the study is finished, stopped or failed (its baseline run failed); returns
        it. `timeout` and `poll` in seconds. Raises OptiboardError on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            study = self.get_study(study_id)
            if study["status"] in ("finished", "stopped", "failed"):
                return study
            if deadline is not None and time.monotonic() + poll > deadline:
                raise OptiboardError(f"study {study_id} still {study['status']} after {timeout} s")
            time.sleep(poll)

    def finish(
        self, run_id: int, status: str = "succeeded", *, error: str | None = None, timeout_s: float | None = None
    ) -> dict[str, Any]:
        """End an external run after sending its buffered points (retrying as `flush` does).

        `timeout_s` (s, default None: only the retries bound it) bounds the whole call, flush
        and finish together. Raises OptiboardError when points stay unsent after the retries or
        the time given (the run is then NOT finished: call `finish` again, or
        `finish(run_id, "failed", ...)`), or when the server refuses the finish. A finish whose
        reply was lost is recognised on the retry (the run already has the requested status)
        and returns the run."""
        deadline = self._deadline(timeout_s)
        self.flush(run_id, timeout_s=timeout_s)
        body = {"status": status, "error": error}
        try:
            return self._json("POST", f"/api/runs/{run_id}/finish", json=body, retry=True, deadline=deadline)
        except OptiboardError as e:
            if e.status == 409:
                run = self._json("GET", f"/api/runs/{run_id}", deadline=deadline)
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
        """Buffer one step's values; the sender thread sends them within `flush_interval_s`
        (at once when the run has `batch_size` points waiting). Never waits on the network.

        Never raises for a logging problem: a name the server would refuse is stored under
        `metric_key(name)` (one warning), a value that is not a number is skipped (one warning),
        a `wall_time` (s since the Unix epoch) outside 0..1e11 is replaced by the time of
        logging (one warning: a time in milliseconds made the server refuse every point), and a
        batch the network or the server could not take stays buffered and is tried again
        by the sender thread (after a backoff) or by `flush()`."""
        try:
            wall = time.time() if wall_time is None else float(wall_time)
        except (TypeError, ValueError):
            wall = math.nan
        if not 0 <= wall <= MAX_WALL_TIME:  # NaN too: the server would refuse every point
            if ("wall_time", "") not in self._warned:
                self._warned.add(("wall_time", ""))
                log.warning(
                    "optiboard: wall_time %r is not seconds since the Unix epoch (0..1e11; milliseconds?); "
                    "the time of logging is stored instead",
                    wall_time,
                )
            wall = time.time()
        points = self._points(((k, step, v) for k, v in metrics.items()), wall)
        with self._lock:
            box = self._outboxes.setdefault(run_id, _Outbox())
            box.open.extend(points)
            if len(box.open) >= self.batch_size:
                self._seal(box)
                self._wake.notify_all()
        self._ensure_sender()

    def log_points(self, run_id: int, points: Iterable[tuple[str, int, float]]) -> int:
        """Send (key, step, value) points now, in batches of `batch_size`, retrying as `flush`
        does; returns how many the server stored (a (key, step) the run already holds is
        ignored, first write wins, and not counted). Raises OptiboardError when points stay
        unsent after the retries, or the server refuses them."""
        wall = time.time()
        pts = self._points(points, wall)
        with self._lock:
            box = self._outboxes.setdefault(run_id, _Outbox())
            self._seal(box)
            for i in range(0, len(pts), self.batch_size):
                box.sealed.append(_Batch(pts[i : i + self.batch_size]))
            self._bound()
        with self._send_lock:
            try:
                return self._send_pending(run_id, box, sleep=True)
            except OptiboardError as e:
                raise self._summary([e], [run_id]) from e

    def flush(self, run_id: int | None = None, *, wait: bool = True, timeout_s: float | None = None) -> None:
        """Send buffered points (of one run, or of all).

        `wait=False` hands them to the sender thread and returns at once (never raises, never
        waits on the network). Otherwise the points are sent from the calling thread, retrying
        with backoff up to `retries` times and, when `timeout_s` (s) is given, for at most that
        long in all. Raises OptiboardError when points stay unsent or are refused; its message
        says how many of each, `unsent` holds the number unsent and `dropped` the number
        refused. Unsent points stay buffered; refused ones (e.g. the run has ended: 409) are
        dropped."""
        rids = [run_id] if run_id is not None else None
        if not wait:
            with self._lock:
                for rid in rids if rids is not None else list(self._outboxes):
                    if (box := self._outboxes.get(rid)) is not None:
                        self._seal(box)
                self._wake.notify_all()
            self._ensure_sender()
            return
        deadline = self._deadline(timeout_s)
        got = self._send_lock.acquire(timeout=-1 if deadline is None else max(0.0, deadline - time.monotonic()))
        if not got:  # the sender thread's request outlasted the time given
            busy = OptiboardError(f"a metrics POST was still under way after {timeout_s:g} s")
            raise self._summary([busy], rids)
        errors: list[OptiboardError] = []
        try:
            with self._lock:
                ids = rids if rids is not None else list(self._outboxes)
            for rid in ids:
                with self._lock:
                    box = self._outboxes.get(rid)
                    if box is None:
                        continue
                    self._seal(box)
                try:
                    self._send_pending(rid, box, sleep=True, deadline=deadline)
                except OptiboardError as e:
                    errors.append(e)
                with self._lock:
                    if not box.size() and self._outboxes.get(rid) is box:
                        del self._outboxes[rid]
        finally:
            self._send_lock.release()
        if errors:
            raise self._summary(errors, rids) from errors[0]

    def _summary(self, errors: list[OptiboardError], run_ids: list[int] | None) -> OptiboardError:
        """One error for a flush: how many points are unsent (kept) and how many were refused
        (dropped), then the first cause."""
        unsent = sum(self.unsent(r) for r in run_ids) if run_ids is not None else self.unsent()
        dropped = sum(getattr(e, "dropped", 0) for e in errors)
        parts = []
        if unsent:
            parts.append(f"{count(unsent, 'metric point')} unsent (kept; a later flush() sends them)")
        if dropped:
            parts.append(f"{count(dropped, 'metric point')} refused by the server and dropped")
        first = errors[0]
        error = OptiboardError(
            f"{'; '.join(parts) or 'nothing sent'}: {first}", status=first.status, detail=first.detail
        )
        error.unsent = unsent  # type: ignore[attr-defined]
        error.dropped = dropped  # type: ignore[attr-defined]
        return error

    def unsent(self, run_id: int | None = None) -> int:
        """Points buffered and not yet acknowledged by the server (of one run, or of all)."""
        with self._lock:
            boxes = [self._outboxes.get(run_id)] if run_id is not None else list(self._outboxes.values())
            return sum(b.size() for b in boxes if b is not None)

    def discard(self, run_id: int) -> int:
        """Drop the run's buffered points without sending them; returns how many (counted in
        `dropped`). For a run given up on: nothing is retried for it any more."""
        with self._lock:
            box = self._outboxes.pop(run_id, None)
            n = box.size() if box is not None else 0
            self.dropped += n
            return n

    def _seal(self, box: _Outbox) -> None:
        """Open points → batches of at most `batch_size` (call with `_lock` held). A batch not
        yet sent is topped up first, so a server that is away costs no extra small POSTs."""
        if box.open and box.sealed and not (last := box.sealed[-1]).tried and len(last.points) < self.batch_size:
            room = self.batch_size - len(last.points)
            last.points.extend(box.open[:room])
            del box.open[:room]
        while box.open:
            box.sealed.append(_Batch(box.open[: self.batch_size]))
            del box.open[: self.batch_size]
        self._bound()

    def _bound(self) -> None:
        """Memory stays bounded while the server is unreachable: drop the oldest batches (not
        the one being sent). Call with `_lock` held."""
        total = sum(b.size() for b in self._outboxes.values())
        while total > self.max_buffered_points:
            box = max(self._outboxes.values(), key=lambda b: len(b.sealed))
            idx = 1 if box.sealed and box.sealed[0] is self._inflight else 0
            if len(box.sealed) <= idx:
                break
            batch = box.sealed[idx]
            del box.sealed[idx]
            total -= len(batch.points)
            self.dropped += len(batch.points)
            log.warning(
                "optiboard: more than %s unsent; dropped the oldest %s (%d dropped so far)",
                count(self.max_buffered_points, "metric point"),
                count(len(batch.points), "point"),
                self.dropped,
            )

    # --- the sender thread ----------------------------------------------------------------

    def _ensure_sender(self) -> None:
        t = self._sender
        if t is not None and self._sender_pid == os.getpid() and t.is_alive():
            return
        with self._lock:
            t = self._sender
            if self._closing or (t is not None and self._sender_pid == os.getpid() and t.is_alive()):
                return
            t = threading.Thread(target=self._run_sender, name="optiboard-sender", daemon=True)
            try:
                t.start()
            except RuntimeError:  # interpreter shutting down: the exit flush sends them
                return
            self._sender, self._sender_pid = t, os.getpid()

    def _run_sender(self) -> None:
        try:
            while self._sender_pass():
                pass
        except Exception as e:  # never seen; log_metrics starts a new thread
            log.warning(
                "optiboard: the metrics sender stopped (%s: %s); it restarts on the next point", type(e).__name__, e
            )

    def _sender_pass(self) -> bool:
        """Wait until a batch is ready (or `flush_interval_s` passed: then seal every open
        buffer), send what is ready; False when the client is closing."""
        with self._lock:
            while True:
                if self._closing:
                    return False
                now = time.monotonic()
                next_tick = self._last_tick + self.flush_interval_s
                if now >= next_tick:
                    for box in self._outboxes.values():
                        self._seal(box)
                    self._last_tick = now
                    break
                if any(b.sealed and now >= b.retry_at for b in self._outboxes.values()):
                    break
                self._wake.wait(timeout=next_tick - now)
        with self._send_lock:
            with self._lock:
                now = time.monotonic()
                ready = [(rid, b) for rid, b in self._outboxes.items() if b.sealed and now >= b.retry_at]
            for rid, box in ready:
                if self._closing:
                    break
                try:
                    self._send_pending(rid, box, sleep=False)
                except OptiboardError:  # refused for good: _send_pending warned and counted it
                    pass
                with self._lock:
                    if not box.size() and self._outboxes.get(rid) is box:
                        del self._outboxes[rid]
        return True

    def _stop_sender(self, timeout_s: float = 1.0) -> None:
        with self._lock:
            self._closing = True
            self._wake.notify_all()
            t = self._sender
        if t is not None and t is not threading.current_thread() and t.is_alive():
            t.join(timeout_s)  # a daemon: a request still under way is not waited for longer

    def _at_exit(self) -> None:
        """Interpreter exit: give buffered points `end_timeout_s` to go out; one warning says
        how many did not."""
        if self._closing:
            return
        try:
            if self.unsent():
                self.flush(timeout_s=self.end_timeout_s)
        except Exception as e:  # noqa: BLE001 - the process is ending: say it, never raise
            n = getattr(e, "unsent", self.unsent())
            log.warning(
                "optiboard: the process exits with %s not sent after %g s (end_timeout_s): %s. An external run "
                "left running is ended `failed` by the server after OPTIBOARD_EXTERNAL_IDLE_TIMEOUT_S without data",
                count(n, "metric point"),
                self.end_timeout_s,
                e,
            )
        finally:
            self._stop_sender(timeout_s=0.2)

    def _send_pending(self, run_id: int, box: _Outbox, *, sleep: bool, deadline: float | None = None) -> int:
        """Send the sealed batches in order (call with `_send_lock` held). Without `sleep`
        (the sender thread), stop at the first transient failure and set the next attempt's
        time; with it, retry each batch up to `retries` times, until `deadline`. Returns the
        points stored. Raises OptiboardError (with sleep) when a batch stays unsent, or when
        the server refuses one for good (then it is dropped; `dropped` on the error)."""
        stored = 0
        while True:
            with self._lock:
                if not box.sealed:
                    return stored
                batch = box.sealed[0]
                batch.tried = True
                self._inflight = batch
            try:
                answer = self._post_batch(run_id, batch, box, sleep=sleep, deadline=deadline)
            except _TooLarge:  # refused whole for its size: two halves are safe to send
                with self._lock:
                    if box.sealed and box.sealed[0] is batch:
                        half = len(batch.points) // 2
                        box.sealed.popleft()
                        box.sealed.extendleft([_Batch(batch.points[half:]), _Batch(batch.points[:half])])
                continue
            except _Refused as e:
                with self._lock:
                    if e.error.status in (404, 409):  # the run takes no points at all any more
                        dropped = box.size()
                        box.sealed.clear()
                        box.open.clear()
                    else:  # this batch cannot be stored as it is
                        dropped = len(batch.points)
                        if box.sealed and box.sealed[0] is batch:
                            box.sealed.popleft()
                    self.dropped += dropped
                if not sleep:  # nobody is told by an exception: say it
                    log.warning(
                        "optiboard: the server refused %s of run %s; dropped: %s",
                        count(dropped, "metric point"),
                        run_id,
                        e.error,
                    )
                refused = OptiboardError(str(e.error), status=e.error.status, detail=e.error.detail)
                refused.dropped = dropped  # type: ignore[attr-defined]
                raise refused from e.error
            except OptiboardError:
                if sleep:
                    raise
                return stored
            finally:
                self._inflight = None
            with self._lock:
                if box.sealed and box.sealed[0] is batch:
                    box.sealed.popleft()
                self._stored_keys.setdefault(run_id, set()).update(p[0] for p in batch.points)
            stored += answer["accepted"]
            if answer.get("duplicates") and not answer.get("replayed") and not box.duplicate_warned:
                box.duplicate_warned = True
                d = answer["duplicates"]
                log.warning(
                    "optiboard: %s sent to run %s already existed there (same key and step); %s ignored "
                    "(first write wins). Resuming a run? Continue its step counter: Client.last_step(run_id) + 1",
                    count(d, "point"),
                    run_id,
                    "it was" if d == 1 else "they were",
                )

    def _post_batch(
        self, run_id: int, batch: _Batch, box: _Outbox, *, sleep: bool, deadline: float | None = None
    ) -> dict[str, Any]:
        path = f"/api/runs/{run_id}/metrics"
        attempts = 1 + (self.retries if sleep else 0)
        error: OptiboardError | None = None
        made = 0
        for attempt in range(1, attempts + 1):
            timeout = self.timeout
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                timeout = min(timeout, left)
            response = None
            made += 1
            if self._over_limit.get(run_id) and self._without_over_limit(run_id, batch) and not batch.points:
                return {"accepted": 0, "duplicates": 0, "replayed": False}
            try:
                response = self._http.post(
                    path,
                    content=_encode(batch.points),
                    headers={"Content-Type": "application/json", "Idempotency-Key": batch.key},
                    timeout=timeout,
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
                    raise _TooLarge()
                if response.status_code == 422 and (
                    self._drop_invalid(batch, error) or self._drop_over_key_limit(run_id, batch, error)
                ):
                    return self._post_batch(run_id, batch, box, sleep=sleep, deadline=deadline)
                if response.status_code in (404, 409, 413, 422):
                    raise _Refused(error)
                if response.status_code not in _TRANSIENT_STATUS and sleep:
                    raise error  # 401/403 and the like: kept, a later flush may succeed
            if sleep:
                if attempt == attempts:
                    break
                delay = self._delay(attempt, response)
                if deadline is not None and time.monotonic() + delay >= deadline:
                    break
                time.sleep(delay)
            else:  # the sender thread: try again after a backoff, warn once per failure streak
                box.failures += 1
                box.retry_at = time.monotonic() + self._delay(box.failures, response)
                if box.failures == 1:
                    log.warning(
                        "optiboard: sending metrics of run %s failed (%s); %s kept, retrying in the background",
                        run_id,
                        error,
                        count(box.size(), "point"),
                    )
        if error is None:
            raise OptiboardError(f"POST {path}: not sent, the time given ran out")
        given = "; the time given ran out" if deadline is not None and made < attempts else ""
        raise OptiboardError(
            f"{error} (after {count(made, 'attempt')}{given})", status=error.status, detail=error.detail
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
        rest = len(batch.points) - len(bad)
        log.warning(
            "optiboard: the server refused %s (%s); the other %s sent",
            count(len(bad), "metric point"),
            error,
            f"{rest} is" if rest == 1 else f"{rest} are",
        )
        batch.points = [p for i, p in enumerate(batch.points) if i not in bad]
        batch.key = uuid.uuid4().hex  # a different body: the refused one stored nothing
        return bool(batch.points)

    def _drop_over_key_limit(self, run_id: int, batch: _Batch, error: OptiboardError) -> bool:
        """A 422 `too_many_metric_keys` (the batch would take the run past its key limit; nothing
        of it was stored): keep the points of keys the run already holds and of as many new keys
        as the limit leaves room for (first come), drop the others' points now and later (one
        warning naming them), and resend the rest. False when nothing can be dropped."""
        detail = error.detail[0] if isinstance(error.detail, list) and error.detail else {}
        if not isinstance(detail, dict) or detail.get("type") != "too_many_metric_keys":
            return False
        ctx = detail.get("ctx") or {}
        with self._lock:
            known = self._stored_keys.get(run_id, set())
            try:
                room = max(0, int(ctx["limit"]) - max(int(ctx["stored"]), len(known)))
            except (KeyError, TypeError, ValueError):
                room = 0
            new = list(dict.fromkeys(p[0] for p in batch.points if p[0] not in known))
            over = set(new[room:])
            if not over:
                return False
            self._over_limit.setdefault(run_id, set()).update(over)
        names = sorted(over)
        log.warning(
            "optiboard: run %s may hold at most %s metric keys (OPTIBOARD_MAX_METRIC_KEYS_PER_RUN); "
            "%s are not logged: %s; the other keys are stored",
            run_id,
            ctx.get("limit", "?"),
            count(len(names), "new key"),
            ", ".join(names[:10]) + (", ..." if len(names) > 10 else ""),
        )
        self._without_over_limit(run_id, batch)
        return bool(batch.points)

    def _without_over_limit(self, run_id: int, batch: _Batch) -> bool:
        """Drop the batch's points of keys past the run's key limit (counted in `dropped`); a
        batch whose body changes gets a new idempotency key (the old body stored nothing: it was
        refused, or never sent). True when points were dropped."""
        over = self._over_limit.get(run_id, set())
        kept = [p for p in batch.points if p[0] not in over]
        if len(kept) == len(batch.points):
            return False
        self.dropped += len(batch.points) - len(kept)
        batch.points = kept
        batch.key = uuid.uuid4().hex
        return True

    # --- uploaded models --------------------------------------------------------------------

    def optimize_model(self, model_id: int, spec: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Queue a run that starts from the uploaded model `model_id`: `spec` (a RunSpec as a
        dict: dataset, training, techniques, exports; default: digits, no training, a float32
        export) with `model.upload_id` set. The run measures the model as it came first (its
        `uploaded` variant), then trains, compresses and exports it. Raises OptiboardError: 422
        naming the field when the model's preflight says the spec cannot work on it (a technique
        it does not support, a dataset of another shape or class count)."""
        body = dict(spec or {})
        body["model"] = {**dict(body.get("model") or {}), "upload_id": int(model_id)}
        body.setdefault("training", {"epochs": 0})
        return self.submit(body)

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

    # --- devices --------------------------------------------------------------------------

    def devices(self) -> list[dict[str, Any]]:
        """Device workers online now: [{device, workers, hardware}] (`optiboard worker --device X`)."""
        return self._json("GET", "/api/devices")["data"]

    def measure_on_device(
        self, run_id: int, device: str, *, wait: bool = False, timeout: float = 600.0, poll: float = 1.0
    ) -> list[dict[str, Any]]:
        """Ask for a succeeded run's TFLite variants to be measured on `device` (a label online
        now); returns one measurement per variant ({id, variant_id, format, device, status,
        worker, fingerprint, figures, error, ...}; figures in ms and bytes). With `wait`, polls
        until each has succeeded or failed (at most `timeout` s). Raises OptiboardError: 404
        unknown run, 409 run not succeeded or without TFLite variants, 422 no such device online."""
        created = self._json("POST", f"/api/runs/{run_id}/measurements", json={"device": device})["data"]
        if not wait:
            return created
        ids = {m["id"] for m in created}
        deadline = time.monotonic() + timeout
        while True:
            mine = [m for m in self.measurements(run_id) if m["id"] in ids]
            if all(m["status"] in ("succeeded", "failed") for m in mine):
                return mine
            if time.monotonic() + poll > deadline:
                raise OptiboardError(f"measurements of run {run_id} on {device} not done after {timeout} s")
            time.sleep(poll)

    def measurements(self, run_id: int) -> list[dict[str, Any]]:
        """The run's device measurements, by variant then in the order they were asked for."""
        return self._json("GET", f"/api/runs/{run_id}/measurements")["data"]

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
