"""The privacy ledger's tables, part of the hub store's schema (same metadata as
`flute.hub.models`; created by the migration `ledger_0001`).

Amounts are exact fixed-point integers (see `flute.hub.ledger`): a budget of epsilon 1.0 split
into ten charges of 0.1 fits exactly ten times, on SQLite and PostgreSQL alike, with no
floating-point drift in either direction. CHECK constraints repeat the ledger's invariant in the
database itself (charged never exceeds the total, never goes negative), as defence in depth.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from flute.hub.models import Base, RowId


class ChargeStatus(str, Enum):
    """RESERVED counts against the budget exactly like COMMITTED: a hub that crashed after
    reserving may already have released its result, so only an explicit release refunds it."""

    RESERVED = "reserved"
    COMMITTED = "committed"
    RELEASED = "released"


class PrivacyBudgetRecord(Base):
    """The data owner's total (epsilon, delta) for one study on one dataset, and how much of it
    is charged (committed + reserved). One row per budget: every reservation is a single
    conditional UPDATE of this row, which both databases serialise."""

    __tablename__ = "privacy_budget"
    __table_args__ = (
        UniqueConstraint("study", "dataset", name="uq_privacy_budget_study_dataset"),
        CheckConstraint("epsilon_charged >= 0 AND epsilon_charged <= epsilon_total", name="ck_privacy_budget_epsilon"),
        CheckConstraint("delta_charged >= 0 AND delta_charged <= delta_total", name="ck_privacy_budget_delta"),
    )

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    study: Mapped[str] = mapped_column(String(200))
    dataset: Mapped[str] = mapped_column(String(200))
    epsilon_total: Mapped[int] = mapped_column(BigInteger)
    delta_total: Mapped[int] = mapped_column(BigInteger)
    epsilon_charged: Mapped[int] = mapped_column(BigInteger)
    delta_charged: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PrivacyChargeRecord(Base):
    """One reservation and what became of it: the cost as the mechanism stated it (unit,
    mechanism, parameters as JSON), the operation it paid for and the process that held it."""

    __tablename__ = "privacy_charge"
    __table_args__ = (Index("ix_privacy_charge_budget_status", "budget_id", "status"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    budget_id: Mapped[int] = mapped_column(ForeignKey("privacy_budget.id"))
    operation: Mapped[str] = mapped_column(Text)
    epsilon: Mapped[int] = mapped_column(BigInteger)
    delta: Mapped[int] = mapped_column(BigInteger)
    unit: Mapped[str] = mapped_column(String(16))
    mechanism: Mapped[str] = mapped_column(String(200))
    details: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    holder: Mapped[str] = mapped_column(String(300))
    reserved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
