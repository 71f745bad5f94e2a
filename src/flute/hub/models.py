"""The hub store's tables (F-HUF-19, NF-PIL-2/4): import batches, pseudonymised patients, the FHIR
resources as received (with every earlier version), their provenance, the derived study rows,
the quarantine of rejected input and the withdrawal register (NF-PIL-11).

The schema is created and evolved only by the Alembic migrations in `flute.hub.migrations`;
these models must match the latest migration (a test compares them).
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Final, Mapping

from sqlalchemy import BigInteger, Boolean, DateTime, Float, ForeignKey, ForeignKeyConstraint, Index, Integer, LargeBinary, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from flute.cohort.variables import AGE, BIOPSY_TYPE, DRE, FAMILY_HISTORY, PIRADS, PROSTATE_VOLUME, PSA

#: 64-bit keys on PostgreSQL; SQLite needs plain INTEGER for its rowid alias (autoincrement).
RowId = BigInteger().with_variant(Integer(), "sqlite")
PSEUDONYM_LENGTH: Final[int] = 64  # hex HMAC-SHA256
HASH_LENGTH: Final[int] = 64  # hex SHA-256


class Base(DeclarativeBase):
    pass


class BatchStatus(str, Enum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class ImportBatch(Base):
    """One run of the ingest pipeline. Once completed, read = stored + unchanged + quarantined."""

    __tablename__ = "import_batch"

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))
    read_count: Mapped[int] = mapped_column(Integer)
    stored_count: Mapped[int] = mapped_column(Integer)
    unchanged_count: Mapped[int] = mapped_column(Integer)
    quarantined_count: Mapped[int] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(Text)


class PatientRecord(Base):
    """A pseudonymised patient. `needs_derivation` marks patients whose study row is stale; it is
    set in the same transaction that stores their resources, so a crash never loses that work."""

    __tablename__ = "patient"

    pseudonym: Mapped[str] = mapped_column(String(PSEUDONYM_LENGTH), primary_key=True)
    first_batch_id: Mapped[int] = mapped_column(ForeignKey("import_batch.id"))
    needs_derivation: Mapped[bool] = mapped_column(Boolean, index=True)
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class StoredResource(Base):
    """One version of a FHIR resource as received (canonical JSON). At most one version per
    type/id is current (a partial unique index enforces it); earlier versions stay as history."""

    __tablename__ = "fhir_resource"
    __table_args__ = (
        UniqueConstraint("resource_type", "resource_id", "content_hash", name="uq_fhir_resource_version"),
        Index(
            "uq_fhir_resource_current",
            "resource_type",
            "resource_id",
            unique=True,
            sqlite_where=text("is_current"),
            postgresql_where=text("is_current"),
        ),
        Index("ix_fhir_resource_patient", "patient_pseudonym", "is_current"),
    )

    row_id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    resource_type: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[str | None] = mapped_column(String(64))
    last_updated: Mapped[str | None] = mapped_column(String(40))
    content_hash: Mapped[str] = mapped_column(String(HASH_LENGTH))
    body: Mapped[str] = mapped_column(Text)
    patient_pseudonym: Mapped[str | None] = mapped_column(ForeignKey("patient.pseudonym"))
    batch_id: Mapped[int] = mapped_column(ForeignKey("import_batch.id"))
    is_current: Mapped[bool] = mapped_column(Boolean)
    withdrawn: Mapped[bool] = mapped_column(Boolean)


class ProvenanceRecord(Base):
    """Where a stored resource version came from (F-SRS-8): the file entry or URL it was read
    from and the batch that stored it. It names the version by its natural key (type, id,
    content hash), so both rows are written in one bulk insert each, without reading back ids."""

    __tablename__ = "provenance"
    __table_args__ = (
        ForeignKeyConstraint(
            ["resource_type", "resource_id", "content_hash"],
            ["fhir_resource.resource_type", "fhir_resource.resource_id", "fhir_resource.content_hash"],
            name="fk_provenance_resource_version",
        ),
        Index("ix_provenance_resource_version", "resource_type", "resource_id", "content_hash"),
    )

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    resource_type: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str] = mapped_column(String(64))
    content_hash: Mapped[str] = mapped_column(String(HASH_LENGTH))
    batch_id: Mapped[int] = mapped_column(ForeignKey("import_batch.id"))
    source: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StudyRowRecord(Base):
    """A patient's derived study variables (one row per pseudonym), re-derived whenever any of
    the patient's resources changes."""

    __tablename__ = "study_row"

    pseudonym: Mapped[str] = mapped_column(ForeignKey("patient.pseudonym"), primary_key=True)
    age_at_biopsy: Mapped[float | None] = mapped_column(Float)
    pca_family_history: Mapped[float | None] = mapped_column(Float)
    type_of_biopsy: Mapped[float | None] = mapped_column(Float)
    psa: Mapped[float | None] = mapped_column(Float)
    dre: Mapped[float | None] = mapped_column(Float)
    prostate_volume: Mapped[float | None] = mapped_column(Float)
    pirads: Mapped[float | None] = mapped_column(Float)
    isup: Mapped[int | None] = mapped_column(Integer)
    cspca: Mapped[int | None] = mapped_column(Integer)
    included: Mapped[bool] = mapped_column(Boolean)
    derived_from_batch: Mapped[int] = mapped_column(ForeignKey("import_batch.id"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


#: StudyVariables name -> study_row column.
VARIABLE_COLUMNS: Final[Mapping[str, str]] = {
    AGE: "age_at_biopsy",
    FAMILY_HISTORY: "pca_family_history",
    BIOPSY_TYPE: "type_of_biopsy",
    PSA: "psa",
    DRE: "dre",
    PROSTATE_VOLUME: "prostate_volume",
    PIRADS: "pirads",
}


class QuarantineRecord(Base):
    """A rejected entry exactly as received, where it came from and why it was rejected
    (`reasons`: JSON list of Issue.to_json())."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("import_batch.id"), index=True)
    location: Mapped[str] = mapped_column(Text)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    resource_type: Mapped[str | None] = mapped_column(String(64))
    resource_id: Mapped[str | None] = mapped_column(String(64))
    reasons: Mapped[str] = mapped_column(Text)
    quarantined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WithdrawalRecord(Base):
    """A patient's withdrawal (NF-PIL-11): from then on excluded from every use and import."""

    __tablename__ = "withdrawal"

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    pseudonym: Mapped[str] = mapped_column(ForeignKey("patient.pseudonym"), unique=True)
    withdrawn_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(Text)


# The privacy ledger keeps its tables in its own module; importing it here registers them on
# Base.metadata wherever the schema is migrated or compared with the migrations.
from flute.hub import ledger_models as _ledger_models  # noqa: E402,F401
