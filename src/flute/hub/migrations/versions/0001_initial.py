"""Initial hub store: batches, patients, resources with history, provenance, study rows,
quarantine, withdrawals.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "import_batch",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("read_count", sa.Integer(), nullable=False),
        sa.Column("stored_count", sa.Integer(), nullable=False),
        sa.Column("unchanged_count", sa.Integer(), nullable=False),
        sa.Column("quarantined_count", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
    )
    op.create_table(
        "patient",
        sa.Column("pseudonym", sa.String(64), primary_key=True),
        sa.Column("first_batch_id", ROW_ID, sa.ForeignKey("import_batch.id"), nullable=False),
        sa.Column("needs_derivation", sa.Boolean(), nullable=False),
        sa.Column("withdrawn_at", TIMESTAMP, nullable=True),
    )
    op.create_index("ix_patient_needs_derivation", "patient", ["needs_derivation"])
    op.create_table(
        "fhir_resource",
        sa.Column("row_id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.String(64), nullable=True),
        sa.Column("last_updated", sa.String(40), nullable=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("patient_pseudonym", sa.String(64), sa.ForeignKey("patient.pseudonym"), nullable=True),
        sa.Column("batch_id", ROW_ID, sa.ForeignKey("import_batch.id"), nullable=False),
        sa.Column("is_current", sa.Boolean(), nullable=False),
        sa.Column("withdrawn", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("resource_type", "resource_id", "content_hash", name="uq_fhir_resource_version"),
    )
    op.create_index(
        "uq_fhir_resource_current",
        "fhir_resource",
        ["resource_type", "resource_id"],
        unique=True,
        sqlite_where=sa.text("is_current"),
        postgresql_where=sa.text("is_current"),
    )
    op.create_index("ix_fhir_resource_patient", "fhir_resource", ["patient_pseudonym", "is_current"])
    op.create_table(
        "provenance",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("batch_id", ROW_ID, sa.ForeignKey("import_batch.id"), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("recorded_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["resource_type", "resource_id", "content_hash"],
            ["fhir_resource.resource_type", "fhir_resource.resource_id", "fhir_resource.content_hash"],
            name="fk_provenance_resource_version",
        ),
    )
    op.create_index("ix_provenance_resource_version", "provenance", ["resource_type", "resource_id", "content_hash"])
    op.create_table(
        "study_row",
        sa.Column("pseudonym", sa.String(64), sa.ForeignKey("patient.pseudonym"), primary_key=True),
        *(
            sa.Column(name, sa.Float(), nullable=True)
            for name in ("age_at_biopsy", "pca_family_history", "type_of_biopsy", "psa", "dre", "prostate_volume", "pirads")
        ),
        sa.Column("isup", sa.Integer(), nullable=True),
        sa.Column("cspca", sa.Integer(), nullable=True),
        sa.Column("included", sa.Boolean(), nullable=False),
        sa.Column("derived_from_batch", ROW_ID, sa.ForeignKey("import_batch.id"), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
    )
    op.create_table(
        "quarantine",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("batch_id", ROW_ID, sa.ForeignKey("import_batch.id"), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=True),
        sa.Column("resource_id", sa.String(64), nullable=True),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("quarantined_at", TIMESTAMP, nullable=False),
    )
    op.create_index("ix_quarantine_batch_id", "quarantine", ["batch_id"])
    op.create_table(
        "withdrawal",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("pseudonym", sa.String(64), sa.ForeignKey("patient.pseudonym"), nullable=False, unique=True),
        sa.Column("withdrawn_at", TIMESTAMP, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    for table in ("withdrawal", "quarantine", "study_row", "provenance", "fhir_resource", "patient", "import_batch"):
        op.drop_table(table)
