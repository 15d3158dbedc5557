"""A run's metric keys: listed, counted and bounded without reading any series.

A run may hold at most `max_keys` distinct keys (Settings.max_metric_keys_per_run,
OPTIBOARD_MAX_METRIC_KEYS_PER_RUN, default 1000): the run page, the compare page and every read
are sized for that many. The keys are read from `metric_points`' primary key (run_id, key, step)
with a "loose index scan" (one index seek per distinct key, a recursive CTE that both SQLite and
PostgreSQL run lazily, so a LIMIT stops it early), never by scanning the points: listing the
keys of a run at the limit costs ~1000 seeks whatever its series hold.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

# The keys a run page plots first when it is not told which (the training loop's own, in this
# order), then the others alphabetically.
DEFAULT_KEYS = ("loss", "val_loss", "accuracy", "val_accuracy")
# The worker's samples of the job process (worker.system_metrics): stepped in seconds since the
# job started, not in training steps, so never part of the default set a curve cursor reads.
SYSTEM_PREFIX = "system/"

_KEYS_SQL = text("""
WITH RECURSIVE k(key) AS (
  SELECT MIN(key) FROM metric_points WHERE run_id = :run_id AND key > :after
  UNION ALL
  SELECT (SELECT MIN(key) FROM metric_points WHERE run_id = :run_id AND key > k.key)
  FROM k WHERE k.key IS NOT NULL
)
SELECT key FROM k WHERE key IS NOT NULL LIMIT :limit""")


class TooManyMetricKeys(ValueError):
    """A batch would take a run past its key limit; nothing of the batch was written."""

    def __init__(self, *, run_id: int, limit: int, stored: int, new: int) -> None:
        self.run_id, self.limit, self.stored, self.new = run_id, limit, stored, new
        super().__init__(
            f"run {run_id} would have more than {limit:,} metric keys ({stored:,} stored, {new:,} new in this "
            f"batch); a run takes at most {limit:,} (OPTIBOARD_MAX_METRIC_KEYS_PER_RUN)"
        )


def list_keys(conn: Connection, *, run_id: int, limit: int, after: str = "") -> list[str]:
    """Up to `limit` of the run's keys in sorted order, after `after` (a cursor for paging).
    Cost: one primary-key seek per key returned."""
    return [str(r[0]) for r in conn.execute(_KEYS_SQL, {"run_id": run_id, "after": after, "limit": int(limit)})]


def count_keys(conn: Connection, *, run_id: int, stop_at: int) -> int:
    """How many keys the run has, counting no further than `stop_at`."""
    return len(list_keys(conn, run_id=run_id, limit=stop_at))


def check_new_keys(conn: Connection, *, run_id: int, batch_keys: int, new_keys: int, max_keys: int) -> None:
    """Raise TooManyMetricKeys when `new_keys` keys not yet stored (of `batch_keys` distinct keys
    in the batch) would take the run past `max_keys`. Counts the stored keys only when the batch
    brings new ones, and only up to the limit."""
    if batch_keys > max_keys:
        raise TooManyMetricKeys(run_id=run_id, limit=max_keys, stored=0, new=batch_keys)
    if not new_keys:
        return
    stored = count_keys(conn, run_id=run_id, stop_at=max_keys + 1)
    if stored + new_keys > max_keys:
        raise TooManyMetricKeys(run_id=run_id, limit=max_keys, stored=stored, new=new_keys)


_HAS_KEY_SQL = text("SELECT 1 FROM metric_points WHERE run_id = :run_id AND key = :key LIMIT 1")


def default_keys(conn: Connection, *, run_id: int, limit: int) -> tuple[list[str], bool]:
    """The keys a reader gets when it names none, and whether the run has more: DEFAULT_KEYS
    the run has, then its other keys in order except the system/ ones, at most `limit`.
    Cost: ~limit + 5 index seeks."""
    first = [k for k in DEFAULT_KEYS if conn.execute(_HAS_KEY_SQL, {"run_id": run_id, "key": k}).first()]
    listed = list_keys(conn, run_id=run_id, limit=limit + len(first) + 1)
    rest = [k for k in listed if k not in first and not k.startswith(SYSTEM_PREFIX)]
    chosen = (first + rest)[:limit]
    return chosen, len(first) + len(rest) > limit
