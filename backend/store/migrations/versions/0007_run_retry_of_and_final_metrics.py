"""runs.retry_of_run_id and runs.final_metrics

A retry names the run it retried, so each links to the other; a finished run keeps the last
value of each logged key (the run summary, as trackers call it), so an external run has a
headline (its final validation accuracy) and sorts by it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 17:20:00

Retries made before this revision carry no link (their spec is the original's, with the name
suffixed " (retry)"; matching names would guess, so nothing is back-filled). Runs finished
before it get no final_metrics either (their series are unchanged; the run page reads them).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("retry_of_run_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("final_metrics", sa.JSON(), nullable=True))
        batch.create_foreign_key(
            batch.f("fk_runs_retry_of_run_id_runs"), "runs", ["retry_of_run_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_index(batch.f("ix_runs_retry_of_run_id"), ["retry_of_run_id"])


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_index(batch.f("ix_runs_retry_of_run_id"))
        batch.drop_constraint(batch.f("fk_runs_retry_of_run_id_runs"), type_="foreignkey")
        batch.drop_column("final_metrics")
        batch.drop_column("retry_of_run_id")
