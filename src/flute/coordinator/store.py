"""The coordinator's database: created and evolved only by `flute.coordinator.migrations`."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from flute.coordinator.home import CoordinatorHomeError, database_url
from flute.hub.store import create_store_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _alembic_config(connection: object) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def open_coordinator_engine(home: Path, *, create: bool = False) -> Engine:
    """The coordinator database's engine, migrated to the head when `create`, else checked to
    be at the head (CoordinatorHomeError says how to fix it)."""
    engine = create_store_engine(database_url(home))
    try:
        with engine.begin() as connection:
            if create:
                command.upgrade(_alembic_config(connection), "head")
            current = MigrationContext.configure(connection).get_current_revision()
    except OperationalError as exc:
        engine.dispose()
        raise CoordinatorHomeError(f"cannot use the coordinator database {engine.url.render_as_string(hide_password=True)}: {exc.orig}") from exc
    head = ScriptDirectory.from_config(_alembic_config(None)).get_current_head()
    if current != head:
        engine.dispose()
        raise CoordinatorHomeError(
            f"the coordinator database at {home} has {'no FLUTE schema' if current is None else f'revision {current}'}, this FLUTE needs {head}: "
            f"run `flute admin init --coordinator-home {home}` (new) or `flute admin upgrade --coordinator-home {home}`"
        )
    return engine
