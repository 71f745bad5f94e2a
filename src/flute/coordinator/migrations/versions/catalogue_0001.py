"""Coordinator catalogue: published dataset entries, access requests, policy acceptances.

Revision ID: catalogue_0001
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "catalogue_0001"
down_revision = "0001"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "catalogue_entry",
        sa.Column("hub", sa.String(64), primary_key=True),
        sa.Column("dataset", sa.String(64), primary_key=True),
        sa.Column("metadata_json", sa.Text(), nullable=False),
        sa.Column("published_at", TIMESTAMP, nullable=False),
    )
    op.create_table(
        "access_request",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("study", sa.String(64), nullable=False),
        sa.Column("researcher", sa.String(200), nullable=False),
        sa.Column("researcher_org", sa.String(64), nullable=False),
        sa.Column("hub", sa.String(64), nullable=False),
        sa.Column("dataset", sa.String(64), nullable=False),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("epsilon", sa.Float(), nullable=False),
        sa.Column("delta", sa.Float(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("decision_json", sa.Text(), nullable=True),
    )
    op.create_index("ix_access_request_hub_status", "access_request", ["hub", "status"])
    op.create_index("ix_access_request_researcher", "access_request", ["researcher"])
    op.create_table(
        "policy_acceptance",
        sa.Column("user_id", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("accepted_at", TIMESTAMP, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("policy_acceptance")
    op.drop_index("ix_access_request_researcher", "access_request")
    op.drop_index("ix_access_request_hub_status", "access_request")
    op.drop_table("access_request")
    op.drop_table("catalogue_entry")
