"""Privacy budget ledger: one row per study x dataset budget, one row per charge.

Revision ID: ledger_0001
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "ledger_0001"
down_revision = "0001"
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "privacy_budget",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("study", sa.String(200), nullable=False),
        sa.Column("dataset", sa.String(200), nullable=False),
        sa.Column("epsilon_total", sa.BigInteger(), nullable=False),
        sa.Column("delta_total", sa.BigInteger(), nullable=False),
        sa.Column("epsilon_charged", sa.BigInteger(), nullable=False),
        sa.Column("delta_charged", sa.BigInteger(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.UniqueConstraint("study", "dataset", name="uq_privacy_budget_study_dataset"),
        sa.CheckConstraint("epsilon_charged >= 0 AND epsilon_charged <= epsilon_total", name="ck_privacy_budget_epsilon"),
        sa.CheckConstraint("delta_charged >= 0 AND delta_charged <= delta_total", name="ck_privacy_budget_delta"),
    )
    op.create_table(
        "privacy_charge",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("budget_id", ROW_ID, sa.ForeignKey("privacy_budget.id"), nullable=False),
        sa.Column("operation", sa.Text(), nullable=False),
        sa.Column("epsilon", sa.BigInteger(), nullable=False),
        sa.Column("delta", sa.BigInteger(), nullable=False),
        sa.Column("unit", sa.String(16), nullable=False),
        sa.Column("mechanism", sa.String(200), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("holder", sa.String(300), nullable=False),
        sa.Column("reserved_at", TIMESTAMP, nullable=False),
        sa.Column("settled_at", TIMESTAMP, nullable=True),
    )
    op.create_index("ix_privacy_charge_budget_status", "privacy_charge", ["budget_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_privacy_charge_budget_status", "privacy_charge")
    op.drop_table("privacy_charge")
    op.drop_table("privacy_budget")
