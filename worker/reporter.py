"""The engine's Reporter, backed by the store: buffered metric points, log lines and progress,
flushed with a heartbeat every second by a background thread (so a run looks alive while the
engine converts or measures), each flush one transaction that first checks the run's lease."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from backend.store import metrics, runs, variants
from backend.store.artifacts import copy_with_sha256, relative_path, writable_inside
from backend.store.db import unit_of_work
from worker.engine.contract import VariantResult

log = logging.getLogger(__name__)


class LeaseLost(Exception):
    """The run was reaped or cancelled elsewhere: this attempt must write nothing more."""


class DbReporter:
    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        run_id: int,
        lease: str,
        artifact_root: Path,
        interval_s: float = 1.0,
        max_buffer: int = 2000,
    ) -> None:
        self.factory, self.run_id, self.lease = factory, run_id, lease
        self.artifact_root = artifact_root
        self.interval_s, self.max_buffer = interval_s, max_buffer
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._points: list[metrics.Point] = []
        self._lines: list[str] = []
        self._progress: tuple[float, float | None] | None = None
        self.state = "ok"  # ok | cancel | lost
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"reporter-{run_id}", daemon=True)

    # -- the Reporter protocol ---------------------------------------------------------------
    def log_metrics(self, points: list[tuple[str, int, float]]) -> None:
        now = time.time()
        with self._lock:
            self._points.extend(metrics.Point(k, int(s), float(v), now) for k, s, v in points)
            full = len(self._points) >= self.max_buffer
        if full:
            self.flush()

    def progress(self, fraction: float, eta_seconds: float | None = None) -> None:
        with self._lock:
            self._progress = (fraction, eta_seconds)

    def should_stop(self) -> bool:
        return self.state != "ok"

    def log(self, message: str) -> None:
        log.info("run %s: %s", self.run_id, message)
        with self._lock:
            self._lines.append(f"{time.strftime('%H:%M:%S')} {message}")

    def add_variant(self, variant: VariantResult) -> None:
        self.flush()  # raises LeaseLost before a lost attempt touches any file
        rel = relative_path(self.run_id, variant.format, attempt=self.lease[:8], suffix=variant.path.suffix)
        target = writable_inside(self.artifact_root, rel)
        digest = copy_with_sha256(Path(variant.path), target)
        fields = {k: v for k, v in asdict(variant).items() if k != "path"}
        fields["artifact_path"] = rel
        fields["sha256"] = digest  # checked before every download and every job that reads it
        with unit_of_work(self.factory) as session:
            self._check_lease(session)
            variants.add_variant(session, run_id=self.run_id, fields=fields)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> DbReporter:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def flush(self) -> None:
        """Write what is buffered, with a heartbeat, in one transaction (raises LeaseLost)."""
        with self._flush_lock:
            with self._lock:
                points, self._points = self._points, []
                lines, self._lines = self._lines, []
                prog = self._progress
            try:
                with unit_of_work(self.factory) as session:
                    self._check_lease(session, prog)
                    if points:
                        metrics.log_batch(session, run_id=self.run_id, points=points)
                    if lines:
                        runs.append_log(session, run_id=self.run_id, lines=lines)
            except LeaseLost:
                raise
            except Exception:
                # Keep the data for the next flush (the database may be briefly unavailable).
                with self._lock:
                    self._points[:0] = points
                    self._lines[:0] = lines
                raise

    def _check_lease(self, session: Session, prog: tuple[float, float | None] | None = None) -> None:
        state = runs.heartbeat(
            session,
            run_id=self.run_id,
            lease=self.lease,
            progress=prog[0] if prog else None,
            eta_seconds=prog[1] if prog else None,
        )
        if state == "lost":
            self.state = "lost"
            raise LeaseLost(f"run {self.run_id}: lease lost")
        if state == "cancel":
            self.state = "cancel"

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.flush()
            except LeaseLost:
                return
            except Exception:
                log.warning("run %s: flush failed; retrying", self.run_id, exc_info=True)
