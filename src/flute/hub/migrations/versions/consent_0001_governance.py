"""Hub governance: dataset declarations, access decisions (grants), data uses, misuse alerts.

Revision ID: consent_0001
Revises: governance_0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "consent_0001"
down_revision = "governance_0001"
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "dataset_declaration",
        sa.Column("dataset", sa.String(64), primary_key=True),
        sa.Column("declaration", sa.Text(), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "access_decision",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("study", sa.String(64), nullable=False),
        sa.Column("dataset", sa.String(64), nullable=False),
        sa.Column("researcher", sa.String(200), nullable=False),
        sa.Column("researcher_org", sa.String(200), nullable=False),
        sa.Column("approved", sa.Boolean(), nullable=False),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.Column("epsilon", sa.Float(), nullable=True),
        sa.Column("delta", sa.Float(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("decided_by", sa.String(200), nullable=False),
        sa.Column("decided_at", TIMESTAMP, nullable=False),
        sa.Column("revoked_at", TIMESTAMP, nullable=True),
        sa.UniqueConstraint("request_id", name="uq_access_decision_request"),
    )
    op.create_index("ix_access_decision_study_dataset", "access_decision", ["study", "dataset"])
    op.create_table(
        "data_use",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("study", sa.String(64), nullable=False),
        sa.Column("dataset", sa.String(64), nullable=False),
        sa.Column("operation", sa.String(200), nullable=False),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.Column("cohort_size", sa.Integer(), nullable=True),
        sa.Column("allowed", sa.Boolean(), nullable=False),
        sa.Column("used_at", TIMESTAMP, nullable=False),
    )
    op.create_index("ix_data_use_study_dataset_at", "data_use", ["study", "dataset", "used_at"])
    op.create_table(
        "misuse_alert",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("study", sa.String(64), nullable=False),
        sa.Column("dataset", sa.String(64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("raised_at", TIMESTAMP, nullable=False),
        sa.Column("acknowledged_at", TIMESTAMP, nullable=True),
        sa.Column("acknowledged_by", sa.String(200), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("misuse_alert")
    op.drop_index("ix_data_use_study_dataset_at", "data_use")
    op.drop_table("data_use")
    op.drop_index("ix_access_decision_study_dataset", "access_decision")
    op.drop_table("access_decision")
    op.drop_table("dataset_declaration")
