"""metric_digests: a finished run's downsampled series, packed, for fast compare reads

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 00:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing finished runs are digested by the API's maintenance loop (it needs the store's
    # numpy code, which a migration should not import).
    op.create_table(
        "metric_digests",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("first_step", sa.BigInteger(), nullable=False),
        sa.Column("last_step", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_metric_digests_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "key", "level", name=op.f("pk_metric_digests")),
    )


def downgrade() -> None:
    op.drop_table("metric_digests")
