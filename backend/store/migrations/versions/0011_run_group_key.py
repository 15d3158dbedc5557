"""runs.group_key: the seed group of each run (issue 19 item 1)

Runs whose specs differ only by seed and labels share a group key (runspec.groups.group_key),
and the compare page aggregates them as a mean with its 95 % confidence interval. Existing
runs are back-filled from their stored spec, so runs made before repeats existed (a sweep over
training.seed, or the same recipe submitted twice) group too.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from runspec.groups import group_key

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BATCH = 500


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("group_key", sa.String(length=64), nullable=True))
    runs = sa.table("runs", sa.column("id", sa.Integer), sa.column("spec", sa.JSON), sa.column("group_key", sa.String))
    conn = op.get_bind()
    last = 0
    while True:  # in pages, so a large table is not held in memory at once
        rows = conn.execute(
            sa.select(runs.c.id, runs.c.spec).where(runs.c.id > last).order_by(runs.c.id).limit(BATCH)
        ).all()
        if not rows:
            break
        conn.execute(
            runs.update().where(runs.c.id == sa.bindparam("rid")).values(group_key=sa.bindparam("key")),
            [{"rid": rid, "key": group_key(spec if isinstance(spec, dict) else {})} for rid, spec in rows],
        )
        last = rows[-1][0]
    with op.batch_alter_table("runs") as batch:
        batch.alter_column("group_key", existing_type=sa.String(length=64), nullable=False)
        batch.create_index(batch.f("ix_runs_group_key"), ["group_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_index(batch.f("ix_runs_group_key"))
        batch.drop_column("group_key")
