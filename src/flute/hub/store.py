"""Opening the hub store: engine creation (SQLite by default, PostgreSQL by URL), the schema
check against the shipped Alembic migrations, and the store's read and withdrawal API.

SQLite runs in WAL mode with foreign keys enforced: readers (status, study tables) never block
the importer, and a killed importer leaves the last committed chunk intact.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from flute.cohort.table import StudyTable
from flute.governance.audit import record
from flute.hub.models import PatientRecord, StoredResource, StudyRowRecord, VARIABLE_COLUMNS, WithdrawalRecord

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class StoreError(RuntimeError):
    """The store cannot be used as asked; the message says why and what to do."""


class SchemaBehindError(StoreError):
    """The database schema is older (or newer) than this version of FLUTE expects."""


def create_store_engine(url: str) -> Engine:
    """An engine for a hub URL: `sqlite:///PATH` or `postgresql+psycopg://...`."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            raise StoreError(f"PostgreSQL URLs must use the psycopg 3 driver: postgresql+psycopg://... (got {parsed.drivername}, driver {parsed.get_driver_name()})")
        return create_engine(url, pool_pre_ping=True)
    raise StoreError(f"unsupported hub database {parsed.drivername!r}: use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # NORMAL is durable against process crashes in WAL mode (only power loss may drop the tail).
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Checkpoint (copy the WAL into the database, fsync) every 32 MiB instead of every 4 MiB:
    # an import rewrites the same index pages chunk after chunk, and copying them once instead
    # of many times takes about a tenth off the importer's writes. Trade-off: under NORMAL the
    # WAL is fsynced at checkpoints, so a power loss (not a process crash) may drop up to 32 MiB
    # of the latest commits - the store stays consistent, and re-running the import restores them.
    cursor.execute("PRAGMA wal_autocheckpoint=8192")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA cache_size=-32768")  # 32 MiB page cache: index inserts of large imports stay in memory
    cursor.close()


def checkpoint_wal(engine: Engine) -> None:
    """Copy what is committed in an SQLite store's write-ahead log into the database file,
    without waiting for or blocking writers (a passive checkpoint); other databases: nothing.
    Otherwise the last connection to close copies the whole log, on the closing import's
    critical path (`flute.hub.pipeline` has its helper do it while the importer writes)."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")


def _alembic_config(connection: Any) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config(None)).get_current_head()
    assert head is not None, "the hub package ships at least one migration"
    return head


def upgrade_schema(engine: Engine) -> None:
    """Apply every pending migration (on `flute hub init` and `flute hub upgrade`)."""
    with engine.begin() as connection:
        command.upgrade(_alembic_config(connection), "head")


def schema_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


@contextmanager
def _reachable(engine: Engine) -> Iterator[None]:
    """Connection failures as a StoreError that names the database (without its password)."""
    try:
        yield
    except OperationalError as exc:
        engine.dispose()
        url = engine.url.render_as_string(hide_password=True)
        raise StoreError(f"cannot use the hub database {url}: {exc.orig}; check that the server runs and the URL's host, port, user and database") from exc


@dataclass(frozen=True)
class Withdrawal:
    pseudonym: str
    withdrawn_at: datetime
    reason: str
    resources_withdrawn: int


class HubStore:
    """The hub's database, opened only after its schema was checked against the migrations."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def create(cls, url: str) -> HubStore:
        engine = create_store_engine(url)
        with _reachable(engine):
            upgrade_schema(engine)
        return cls(engine)

    @classmethod
    def open(cls, url: str) -> HubStore:
        """Open an existing store; refuses a schema that is not at this code's head revision."""
        engine = create_store_engine(url)
        with _reachable(engine):
            current = schema_revision(engine)
        head = head_revision()
        if current != head:
            engine.dispose()
            found = "no FLUTE schema" if current is None else f"schema revision {current}"
            raise SchemaBehindError(
                f"hub database {make_url(url).render_as_string(hide_password=True)} has {found}, this FLUTE needs {head}: "
                "run `flute hub upgrade --home DIR` (or `flute hub init` for a new hub)"
            )
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    def study_table(self, variables: Sequence[str], *, included_only: bool = True) -> StudyTable:
        """Labelled rows of non-withdrawn patients (StudyDataSource), ordered by pseudonym;
        NaN where a variable is missing."""
        unknown = [name for name in variables if name not in VARIABLE_COLUMNS]
        if unknown:
            raise ValueError(f"unknown study variables {unknown}; known: {list(VARIABLE_COLUMNS)}")
        row = StudyRowRecord.__table__.c
        query = (
            select(*(row[VARIABLE_COLUMNS[name]] for name in variables), row.cspca)
            .join(PatientRecord, PatientRecord.pseudonym == row.pseudonym)
            .where(PatientRecord.withdrawn_at.is_(None), row.cspca.is_not(None))
            .order_by(row.pseudonym)
        )
        if included_only:
            query = query.where(row.included.is_(True))
        with self.engine.connect() as connection:
            records = connection.execute(query).all()
        features = np.array([[np.nan if v is None else v for v in r[:-1]] for r in records], dtype=np.float64)
        features = features.reshape(len(records), len(variables))
        labels = np.array([r[-1] for r in records], dtype=np.int64)
        return StudyTable(columns=tuple(variables), features=features, labels=labels)

    def withdraw(self, pseudonym: str, reason: str) -> Withdrawal:
        """Withdraw a patient (NF-PIL-11): their study row is deleted, their resources are marked
        withdrawn and excluded from every use, later imports of them are quarantined, and the
        withdrawal is recorded."""
        now = datetime.now(UTC)
        with self.engine.begin() as connection:
            patient = connection.execute(
                select(PatientRecord.withdrawn_at).where(PatientRecord.pseudonym == pseudonym).with_for_update()
            ).first()
            if patient is None:
                raise StoreError(f"no patient with pseudonym {pseudonym!r} in this hub (see `flute hub status`)")
            if patient.withdrawn_at is not None:
                raise StoreError(f"patient {pseudonym} was already withdrawn at {patient.withdrawn_at.isoformat()}")
            connection.execute(update(PatientRecord).where(PatientRecord.pseudonym == pseudonym).values(withdrawn_at=now, needs_derivation=False))
            withdrawn = connection.execute(
                update(StoredResource).where(StoredResource.patient_pseudonym == pseudonym).values(withdrawn=True)
            ).rowcount
            connection.execute(StudyRowRecord.__table__.delete().where(StudyRowRecord.pseudonym == pseudonym))
            connection.execute(WithdrawalRecord.__table__.insert().values(pseudonym=pseudonym, withdrawn_at=now, reason=reason))
            record(connection, "withdrawal.create", f"patient:{pseudonym}", {"reason": reason, "resources_withdrawn": withdrawn})
        return Withdrawal(pseudonym=pseudonym, withdrawn_at=now, reason=reason, resources_withdrawn=withdrawn)
