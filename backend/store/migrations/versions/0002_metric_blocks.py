"""metric_blocks: per-series step-block summaries for fast downsampled reads

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 21:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

LEVELS = (16, 64, 256, 1024, 4096)

# Backfill of existing points, level by level (the same summaries log_batch maintains).
_PIVOT = """MAX(CASE WHEN rf = 1 THEN {fs} END), MAX(CASE WHEN rf = 1 THEN {fv} END),
  MAX(CASE WHEN rl = 1 THEN {ls} END), MAX(CASE WHEN rl = 1 THEN {lv} END),
  MAX(CASE WHEN rmin = 1 THEN {ns} END), MAX(CASE WHEN rmin = 1 THEN {nv} END),
  MAX(CASE WHEN rmax = 1 THEN {xs} END), MAX(CASE WHEN rmax = 1 THEN {xv} END)"""
_COLS = "n, first_step, first_value, last_step, last_value, min_step, min_value, max_step, max_value"
_FROM_POINTS = f"""
INSERT INTO metric_blocks (run_id, key, level, block, {_COLS})
SELECT run_id, key, {{level}}, b, COUNT(*),
  {_PIVOT.format(fs="step", fv="value", ls="step", lv="value", ns="step", nv="value", xs="step", xv="value")}
FROM (
  SELECT run_id, key, step / {{level}} AS b, step, value,
    ROW_NUMBER() OVER (PARTITION BY run_id, key, step / {{level}} ORDER BY step) AS rf,
    ROW_NUMBER() OVER (PARTITION BY run_id, key, step / {{level}} ORDER BY step DESC) AS rl,
    ROW_NUMBER() OVER (PARTITION BY run_id, key, step / {{level}} ORDER BY value ASC NULLS FIRST, step) AS rmin,
    ROW_NUMBER() OVER (PARTITION BY run_id, key, step / {{level}} ORDER BY value DESC NULLS LAST, step) AS rmax
  FROM metric_points
) AS t GROUP BY run_id, key, b"""
_FROM_BLOCKS = f"""
INSERT INTO metric_blocks (run_id, key, level, block, {_COLS})
SELECT run_id, key, {{level}}, b, SUM(n),
  {
    _PIVOT.format(
        fs="first_step",
        fv="first_value",
        ls="last_step",
        lv="last_value",
        ns="min_step",
        nv="min_value",
        xs="max_step",
        xv="max_value",
    )
}
FROM (
  SELECT run_id, key, block / {{ratio}} AS b, n, first_step, first_value, last_step, last_value,
    min_step, min_value, max_step, max_value,
    ROW_NUMBER() OVER (PARTITION BY run_id, key, block / {{ratio}} ORDER BY block) AS rf,
    ROW_NUMBER() OVER (PARTITION BY run_id, key, block / {{ratio}} ORDER BY block DESC) AS rl,
    ROW_NUMBER() OVER (PARTITION BY run_id, key, block / {{ratio}} ORDER BY min_value ASC NULLS FIRST, min_step) AS rmin,
    ROW_NUMBER() OVER (PARTITION BY run_id, key, block / {{ratio}} ORDER BY max_value DESC NULLS LAST, max_step) AS rmax
  FROM metric_blocks WHERE level = {{child}}
) AS t GROUP BY run_id, key, b"""

# Whoever deletes a run's points (a new attempt, a purge) also drops its summaries.
_PG_TRIGGER = """
CREATE FUNCTION metric_points_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM metric_blocks WHERE run_id IN (SELECT DISTINCT run_id FROM old_rows);
  RETURN NULL;
END $$;
CREATE TRIGGER metric_points_deleted AFTER DELETE ON metric_points
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION metric_points_deleted();
"""
_SQLITE_TRIGGER = """
CREATE TRIGGER metric_points_deleted AFTER DELETE ON metric_points
BEGIN
  DELETE FROM metric_blocks WHERE run_id = old.run_id;
END
"""


def upgrade() -> None:
    op.create_table(
        "metric_blocks",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("block", sa.BigInteger(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("first_step", sa.BigInteger(), nullable=False),
        sa.Column("first_value", sa.Float(), nullable=True),
        sa.Column("last_step", sa.BigInteger(), nullable=False),
        sa.Column("last_value", sa.Float(), nullable=True),
        sa.Column("min_step", sa.BigInteger(), nullable=False),
        sa.Column("min_value", sa.Float(), nullable=True),
        sa.Column("max_step", sa.BigInteger(), nullable=False),
        sa.Column("max_value", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_metric_blocks_run_id_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "key", "level", "block", name=op.f("pk_metric_blocks")),
        # SQLite: rows stored in primary-key order, so one series' blocks of one level are one range
        # read instead of a rowid lookup per block.
        sqlite_with_rowid=False,
    )
    op.execute(_FROM_POINTS.format(level=LEVELS[0]))
    for child, level in zip(LEVELS, LEVELS[1:], strict=False):
        op.execute(_FROM_BLOCKS.format(level=level, ratio=level // child, child=child))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_TRIGGER)
    else:
        op.execute(_SQLITE_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS metric_points_deleted ON metric_points")
        op.execute("DROP FUNCTION IF EXISTS metric_points_deleted()")
    else:
        op.execute("DROP TRIGGER IF EXISTS metric_points_deleted")
    op.drop_table("metric_blocks")
