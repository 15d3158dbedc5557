"""One line per broker outage instead of a traceback per attempt.

While Redis is down every submission, every dispatcher sweep and every queued run used to log a
full traceback (~25 lines a second under `optiboard up` with three queued runs). A connection
error is expected there and says nothing a traceback adds: `BrokerOutage.failed` logs one
warning naming the error when the outage starts, then at most one reminder per `every_s`, and
`recovered` logs when the broker answers again. Any other exception keeps its traceback.
"""

from __future__ import annotations

import logging
import threading
import time

_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError, OSError)
try:  # the errors kombu and redis-py raise for an unreachable broker
    from kombu.exceptions import OperationalError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    _CONNECTION_ERRORS += (OperationalError, RedisConnectionError, RedisTimeoutError)
except ImportError:  # pragma: no cover - both ship with celery[redis]
    pass


class BrokerOutage:
    def __init__(self, log: logging.Logger, *, every_s: float = 60.0) -> None:
        self.log, self.every_s = log, every_s
        self._lock = threading.Lock()
        self._since: float | None = None
        self._last_log = 0.0
        self._suppressed = 0

    def failed(self, exc: BaseException, what: str) -> None:
        """Record a failed broker call (`what` says what waits: 'run 3 stays queued')."""
        if not isinstance(exc, _CONNECTION_ERRORS):
            self.log.warning("broker call failed; %s", what, exc_info=exc)
            return
        now = time.monotonic()
        with self._lock:
            if self._since is None:
                self._since, self._last_log, self._suppressed = now, now, 0
                self.log.warning(
                    "broker unavailable (%s: %s); %s. Retrying quietly; the dispatcher "
                    "re-sends queued runs once it is back",
                    type(exc).__name__,
                    exc,
                    what,
                )
            elif now - self._last_log >= self.every_s:
                self.log.warning(
                    "broker still unavailable after %.0f s (%d more failed calls; last: %s); %s",
                    now - self._since,
                    self._suppressed,
                    exc,
                    what,
                )
                self._last_log, self._suppressed = now, 0
            else:
                self._suppressed += 1

    def recovered(self) -> None:
        """Record a successful broker call (logs the end of an outage)."""
        if self._since is None:
            return
        with self._lock:
            if self._since is not None:
                self.log.warning("broker reachable again after %.0f s", time.monotonic() - self._since)
                self._since = None


# The API process's one tracker: submissions and the dispatcher share it.
BROKER = BrokerOutage(logging.getLogger("optiboard.broker"))
