"""Synthetic-data workspace: saved generators, versioned datasets, drafts, jobs, usage.

Revision ID: workspace_0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "workspace_0001"
down_revision = None
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "synth_generator",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("generator", sa.String(64), nullable=False),
        sa.Column("study", sa.String(64), nullable=False),
        sa.Column("hubs_json", sa.Text(), nullable=False),
        sa.Column("epsilon", sa.Float(), nullable=True),
        sa.Column("delta", sa.Float(), nullable=True),
        sa.Column("hyperparameters_json", sa.Text(), nullable=False),
        sa.Column("provenance_json", sa.Text(), nullable=False),
        sa.Column("directory", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.UniqueConstraint("name", "version", name="uq_synth_generator_name_version"),
    )
    op.create_table(
        "synth_dataset",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("generator_id", sa.Integer(), sa.ForeignKey("synth_generator.id"), nullable=False),
        sa.Column("generator", sa.String(64), nullable=False),
        sa.Column("hyperparameters_json", sa.Text(), nullable=False),
        sa.Column("epsilon", sa.Float(), nullable=True),
        sa.Column("delta", sa.Float(), nullable=True),
        sa.Column("study", sa.String(64), nullable=False),
        sa.Column("hubs_json", sa.Text(), nullable=False),
        sa.Column("conditions", sa.Text(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=True),
        sa.Column("csv_path", sa.Text(), nullable=False),
        sa.Column("csv_sha256", sa.String(64), nullable=False),
        sa.Column("schema_path", sa.Text(), nullable=False),
        sa.Column("schema_sha256", sa.String(64), nullable=False),
        sa.Column("evaluation_json", sa.Text(), nullable=True),
        sa.Column("report_path", sa.Text(), nullable=True),
        sa.Column("report_sha256", sa.String(64), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.UniqueConstraint("name", "version", name="uq_synth_dataset_name_version"),
    )
    op.create_table(
        "synth_draft",
        sa.Column("user", sa.String(200), primary_key=True),
        sa.Column("generator", sa.String(64), primary_key=True),
        sa.Column("hyperparameters_json", sa.Text(), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
    )
    op.create_table(
        "synth_job",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user", sa.String(200), nullable=False),
        sa.Column("generator", sa.String(64), nullable=False),
        sa.Column("request_json", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("heartbeat_at", TIMESTAMP, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("generator_id", sa.Integer(), sa.ForeignKey("synth_generator.id"), nullable=True),
    )
    op.create_index("ix_synth_job_user", "synth_job", ["user"])
    op.create_index("ix_synth_job_state", "synth_job", ["state"])
    op.create_table(
        "synth_usage",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("user", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("cpu_seconds", sa.Float(), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
    )
    op.create_index("ix_synth_usage_user", "synth_usage", ["user"])


def downgrade() -> None:
    for table in ("synth_usage", "synth_job", "synth_draft", "synth_dataset", "synth_generator"):
        op.drop_table(table)
