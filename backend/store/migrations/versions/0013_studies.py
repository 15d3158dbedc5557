"""studies, study_trials, runs.study_id and runs.trial_number (issue 20: goal-driven search)

A study is a budgeted search over recipes from a baseline run; each trial is an ordinary run
(runs.study_id, runs.trial_number unique per study) with a study_trials row holding the sampled
recipe and what the study was told (values, constraint value, pruned or failed). The sampler is
rebuilt from these rows after any restart: the database is the only source of truth.

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-02 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "studies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("experiment", sa.String(length=200), nullable=False),
        sa.Column("baseline_run_id", sa.Integer(), nullable=False),
        sa.Column("dataset", sa.JSON(), nullable=False),
        sa.Column("objectives", sa.JSON(), nullable=False),
        sa.Column("constraint", sa.JSON(), nullable=False),
        sa.Column("search_space", sa.JSON(), nullable=False),
        sa.Column("budget", sa.JSON(), nullable=False),
        sa.Column("strategy", sa.String(length=16), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("reference", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("stop_reason", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_studies")),
    )
    op.create_index(op.f("ix_studies_status"), "studies", ["status"])
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("study_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("trial_number", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            batch.f("fk_runs_study_id_studies"), "studies", ["study_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_unique_constraint("uq_runs_study_id_trial_number", ["study_id", "trial_number"])
    op.create_table(
        "study_trials",
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("sampler_attrs", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("values", sa.JSON(), nullable=True),
        sa.Column("constraint_value", sa.Float(), nullable=True),
        sa.Column("pruned_reason", sa.Text(), nullable=True),
        sa.Column("worker_seconds", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("told_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_study_trials_study_id_studies"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_study_trials_run_id_runs"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("study_id", "number", name=op.f("pk_study_trials")),
        sa.UniqueConstraint("run_id", name=op.f("uq_study_trials_run_id")),
    )


def downgrade() -> None:
    op.drop_table("study_trials")
    with op.batch_alter_table("runs") as batch:
        batch.drop_constraint("uq_runs_study_id_trial_number", type_="unique")
        batch.drop_constraint(batch.f("fk_runs_study_id_studies"), type_="foreignkey")
        batch.drop_column("trial_number")
        batch.drop_column("study_id")
    op.drop_index(op.f("ix_studies_status"), table_name="studies")
    op.drop_table("studies")
