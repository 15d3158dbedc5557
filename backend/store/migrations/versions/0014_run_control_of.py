"""runs.control_of_run_id

A run submitted with `control: true` gets a same-budget control twin (runspec.controls) created in
the same transaction; the twin names the run it controls, so each links to the other (the reverse
link, a run's control, is read through the index).

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 23:00:00

Written as 0012 beside 0011 (seed groups) and 0013 (studies); re-chained after them when
merged. Nothing to back-fill: no control existed before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("control_of_run_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            batch.f("fk_runs_control_of_run_id_runs"), "runs", ["control_of_run_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_index(batch.f("ix_runs_control_of_run_id"), ["control_of_run_id"])


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_index(batch.f("ix_runs_control_of_run_id"))
        batch.drop_constraint(batch.f("fk_runs_control_of_run_id_runs"), type_="foreignkey")
        batch.drop_column("control_of_run_id")
