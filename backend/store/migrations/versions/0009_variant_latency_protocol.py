"""variants: the latency protocol's distribution, start-up, memory and microcontroller figures (issue 18)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 10:00:00

All columns are nullable: variants stored before this revision were measured by the older
harness (p50/p95 only) and keep NULL, which the pages show as "not measured".
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_FLOATS = (
    "latency_p90_ms",
    "latency_p99_ms",
    "latency_mean_ms",
    "latency_std_ms",
    "latency_min_ms",
    "latency_cv",
    "init_ms",
    "first_inference_ms",
    "load_avg_1m",
)
_INTS = ("latency_count", "latency_threads")
_BIGINTS = ("peak_memory_bytes", "mcu_ram_bytes", "mcu_flash_bytes")


def upgrade() -> None:
    with op.batch_alter_table("variants") as batch:
        for name in _FLOATS:
            batch.add_column(sa.Column(name, sa.Float(), nullable=True))
        for name in _INTS:
            batch.add_column(sa.Column(name, sa.Integer(), nullable=True))
        batch.add_column(sa.Column("latency_unstable", sa.Boolean(), nullable=True))
        for name in _BIGINTS:
            batch.add_column(sa.Column(name, sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("variants") as batch:
        for name in (*_BIGINTS, "latency_unstable", *_INTS, *_FLOATS):
            batch.drop_column(name)
