"""variants.sha256 and variants.damaged: every stored model file carries its digest

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 13:30:00

Variants stored before this revision get their digest the first time their file is read after
the upgrade (trust on first use, backend.store.variants.verified_file): a migration does not
read the artifact directory (it may live elsewhere, and hashing every model would make the
upgrade as slow as the artifact store is large).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("variants") as batch:
        batch.add_column(sa.Column("sha256", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("damaged", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("variants") as batch:
        batch.drop_column("damaged")
        batch.drop_column("sha256")
