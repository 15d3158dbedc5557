"""variant_measurements: variants measured on a target device (issue 18 item 4)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_FLOATS = (
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "latency_mean_ms",
    "latency_std_ms",
    "latency_min_ms",
)


def upgrade() -> None:
    op.create_table(
        "variant_measurements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("variant_id", sa.Integer(), nullable=False),
        sa.Column("device", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("worker", sa.String(length=200), nullable=True),
        sa.Column("fingerprint", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        *(sa.Column(name, sa.Float(), nullable=True) for name in _FLOATS),
        sa.Column("latency_count", sa.Integer(), nullable=True),
        sa.Column("latency_cv", sa.Float(), nullable=True),
        sa.Column("latency_unstable", sa.Boolean(), nullable=True),
        sa.Column("latency_threads", sa.Integer(), nullable=True),
        sa.Column("init_ms", sa.Float(), nullable=True),
        sa.Column("first_inference_ms", sa.Float(), nullable=True),
        sa.Column("load_avg_1m", sa.Float(), nullable=True),
        sa.Column("peak_memory_bytes", sa.BigInteger(), nullable=True),
        sa.Column("mcu_ram_bytes", sa.BigInteger(), nullable=True),
        sa.Column("mcu_flash_bytes", sa.BigInteger(), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("measured_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["variant_id"],
            ["variants.id"],
            name=op.f("fk_variant_measurements_variant_id_variants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_variant_measurements")),
    )
    op.create_index("ix_variant_measurements_variant_id_device", "variant_measurements", ["variant_id", "device"])


def downgrade() -> None:
    op.drop_index("ix_variant_measurements_variant_id_device", table_name="variant_measurements")
    op.drop_table("variant_measurements")
