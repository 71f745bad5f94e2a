"""The hub's governance tables, part of the hub store's schema (created by the migration
`consent_0001`): the data owner's dataset declarations (NF-PIL-6/8), decisions on access
requests with the fields and budget granted (NF-PIL-9, F-SRS-7/9), the log of data uses the
misuse rules read, and the alerts they raise (NF-PIL-10).

Decisions are kept on the hub, not only at the coordinator: the hub enforces them
(`flute.hub.consent.ConsentRegister.guard`), so a coordinator cannot grant itself access.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from flute.hub.models import Base, RowId


class DatasetDeclarationRecord(Base):
    """What the owner declares about a dataset (JSON of `DatasetDeclaration`), one row per id."""

    __tablename__ = "dataset_declaration"

    dataset: Mapped[str] = mapped_column(String(64), primary_key=True)
    declaration: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_by: Mapped[str] = mapped_column(String(200))


class AccessDecisionRecord(Base):
    """The owner's decision on one access request (one study, one dataset). An approved decision
    not revoked is a grant: `fields` (JSON list) are the only variables the study may use."""

    __tablename__ = "access_decision"
    __table_args__ = (
        UniqueConstraint("request_id", name="uq_access_decision_request"),
        Index("ix_access_decision_study_dataset", "study", "dataset"),
    )

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(64))
    study: Mapped[str] = mapped_column(String(64))
    dataset: Mapped[str] = mapped_column(String(64))
    researcher: Mapped[str] = mapped_column(String(200))
    researcher_org: Mapped[str] = mapped_column(String(200))
    approved: Mapped[bool] = mapped_column(Boolean)
    fields: Mapped[str] = mapped_column(Text)
    epsilon: Mapped[float | None] = mapped_column(Float)
    delta: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text)
    decided_by: Mapped[str] = mapped_column(String(200))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DataUseRecord(Base):
    """One use of a dataset's rows on this hub (a training step, a statistics query), allowed
    or refused: the history the misuse rules look at (NF-PIL-10, F-SRS-8)."""

    __tablename__ = "data_use"
    __table_args__ = (Index("ix_data_use_study_dataset_at", "study", "dataset", "used_at"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    study: Mapped[str] = mapped_column(String(64))
    dataset: Mapped[str] = mapped_column(String(64))
    operation: Mapped[str] = mapped_column(String(200))
    fields: Mapped[str] = mapped_column(Text)
    cohort_size: Mapped[int | None] = mapped_column(Integer)
    allowed: Mapped[bool] = mapped_column(Boolean)
    used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MisuseAlertRecord(Base):
    """An alert raised by a misuse rule, shown to the data owner until acknowledged."""

    __tablename__ = "misuse_alert"

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    rule: Mapped[str] = mapped_column(String(64))
    study: Mapped[str] = mapped_column(String(64))
    dataset: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    raised_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
