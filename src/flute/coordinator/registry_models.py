"""The coordinator's catalogue tables (created by the coordinator migration `catalogue_0001`):
published dataset entries (NF-PIL-6), access requests with the hubs' answers (NF-PIL-9) and
users' acceptances of the terms and the privacy policy per version (NF-PIL-7)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class RegistryBase(DeclarativeBase):
    pass


class CatalogueEntryRecord(RegistryBase):
    """A hub's dataset as last published (JSON of `DatasetMetadata.to_json`)."""

    __tablename__ = "catalogue_entry"

    hub: Mapped[str] = mapped_column(String(64), primary_key=True)
    dataset: Mapped[str] = mapped_column(String(64), primary_key=True)
    metadata_json: Mapped[str] = mapped_column(Text)
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AccessRequestRecord(RegistryBase):
    """One researcher's request for one dataset for one study, and the hub's answer."""

    __tablename__ = "access_request"
    __table_args__ = (Index("ix_access_request_hub_status", "hub", "status"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    study: Mapped[str] = mapped_column(String(64))
    researcher: Mapped[str] = mapped_column(String(200), index=True)
    researcher_org: Mapped[str] = mapped_column(String(64))
    hub: Mapped[str] = mapped_column(String(64))
    dataset: Mapped[str] = mapped_column(String(64))
    fields: Mapped[str] = mapped_column(Text)
    purpose: Mapped[str] = mapped_column(Text)
    epsilon: Mapped[float] = mapped_column(Float)
    delta: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decision_json: Mapped[str | None] = mapped_column(Text)


class PolicyAcceptanceRecord(RegistryBase):
    """A user accepted version `version` of policy `kind` (terms, privacy)."""

    __tablename__ = "policy_acceptance"

    user_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    accepted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
