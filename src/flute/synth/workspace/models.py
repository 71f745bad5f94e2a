"""The synthetic-data workspace's tables (created by `flute.synth.workspace.migrations`):
saved generators and generated datasets, each versioned by name (F-IMSD-12/15), hyperparameter
drafts per user and generator (F-IMSD-2/10), asynchronous jobs (F-IMSD-16, NF-IMSD-5) and the
usage events metering each user (NF-IMSD-7).

Artefact files live under the workspace home; rows hold their paths RELATIVE to it and their
SHA-256, so a moved home stays valid and a tampered file is detectable.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class WorkspaceBase(DeclarativeBase):
    pass


class GeneratorRecord(WorkspaceBase):
    """A trained generator saved by `FittedGenerator.save` into `directory`; `provenance_json`
    is its provenance (hubs, mode, epsilon, delta, unit of privacy)."""

    __tablename__ = "synth_generator"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_synth_generator_name_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    generator: Mapped[str] = mapped_column(String(64))
    study: Mapped[str] = mapped_column(String(64))
    hubs_json: Mapped[str] = mapped_column(Text)
    epsilon: Mapped[float | None] = mapped_column(Float, nullable=True)
    delta: Mapped[float | None] = mapped_column(Float, nullable=True)
    hyperparameters_json: Mapped[str] = mapped_column(Text)
    provenance_json: Mapped[str] = mapped_column(Text)
    directory: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DatasetRecord(WorkspaceBase):
    """One version of a generated dataset: what produced it and its files (CSV + schema JSON,
    and once evaluated the evaluation JSON and the HTML report)."""

    __tablename__ = "synth_dataset"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_synth_dataset_name_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    generator_id: Mapped[int] = mapped_column(ForeignKey("synth_generator.id"))
    generator: Mapped[str] = mapped_column(String(64))
    hyperparameters_json: Mapped[str] = mapped_column(Text)
    epsilon: Mapped[float | None] = mapped_column(Float, nullable=True)
    delta: Mapped[float | None] = mapped_column(Float, nullable=True)
    study: Mapped[str] = mapped_column(String(64))
    hubs_json: Mapped[str] = mapped_column(Text)
    conditions: Mapped[str] = mapped_column(Text)
    rows: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int | None] = mapped_column(Integer, nullable=True)
    csv_path: Mapped[str] = mapped_column(Text)
    csv_sha256: Mapped[str] = mapped_column(String(64))
    schema_path: Mapped[str] = mapped_column(Text)
    schema_sha256: Mapped[str] = mapped_column(String(64))
    evaluation_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    report_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    report_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DraftRecord(WorkspaceBase):
    """A user's saved (not yet used) hyperparameters for one generator."""

    __tablename__ = "synth_draft"

    user: Mapped[str] = mapped_column(String(200), primary_key=True)
    generator: Mapped[str] = mapped_column(String(64), primary_key=True)
    hyperparameters_json: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class JobRecord(WorkspaceBase):
    """A training job: its request, state, progress and the generator it saved."""

    __tablename__ = "synth_job"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user: Mapped[str] = mapped_column(String(200), index=True)
    generator: Mapped[str] = mapped_column(String(64))
    request_json: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), index=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    generator_id: Mapped[int | None] = mapped_column(ForeignKey("synth_generator.id"), nullable=True)


class UsageRecord(WorkspaceBase):
    """One metered action of a user: a training, a sampling (rows) or an evaluation."""

    __tablename__ = "synth_usage"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    rows: Mapped[int] = mapped_column(Integer, default=0)
    cpu_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    reference: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
