"""The hub's set-at-a-time SQL (flute.hub.bulk) on SQLite and a real PostgreSQL server, and the
import's garbage-collector setting (NF-PIL-2/4: ingest throughput without changing results)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, select

from flute.fhir.readers import iter_units
from flute.fhir.source import ImportUnit
from flute.hub.bulk import bulk_insert, in_values
from flute.hub.ingest import IMPORT_GC_THRESHOLD
from flute.hub.models import ImportBatch
from flute.hub.node import Hub
from flute.hub.store import HubStore

from .hub_inputs import IG_INCLUDED

_METADATA = MetaData()
_NAMES = Table("bulk_names", _METADATA, Column("id", Integer, primary_key=True), Column("name", String(64)))


@pytest.fixture
def engine(hub_db_url_or_sqlite: str) -> Iterator[Engine]:
    store = HubStore.create(hub_db_url_or_sqlite)
    _METADATA.create_all(store.engine)
    yield store.engine
    store.close()


#: Ids as they come in FHIR plus what could break a JSON or SQL rendering of a list.
_NAME = st.one_of(st.from_regex(r"[A-Za-z0-9\-.]{1,64}", fullmatch=True), st.text(max_size=20).filter(lambda t: "\x00" not in t))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stored=st.lists(_NAME, max_size=30, unique=True), asked=st.lists(_NAME, min_size=1, max_size=30))
def test_in_values_selects_exactly_the_listed_values(engine: Engine, stored: list[str], asked: list[str]) -> None:
    with engine.begin() as connection:
        connection.execute(_NAMES.delete())
        bulk_insert(connection, _NAMES, ("id", "name"), [(i, name) for i, name in enumerate(stored)])
        statement = select(_NAMES.c.name).where(in_values(_NAMES.c.name, "names", connection.dialect.name))
        found = connection.execute(statement, {"names": set(asked)}).scalars().all()
    assert sorted(found) == sorted(set(stored) & set(asked))


def test_bulk_insert_stores_what_sqlalchemy_stores(engine: Engine) -> None:
    """Driver-level rows pass the dialect's bind processors: a timestamp and flags read back as
    the values SQLAlchemy's own insert would give, and a single-column insert works too."""
    batch = ImportBatch.__table__
    started = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    columns = ("id", "source", "started_at", "status", "read_count", "stored_count", "unchanged_count", "quarantined_count")
    with engine.begin() as connection:
        bulk_insert(connection, batch, columns, [(1, "bulk", started, "completed", 1, 1, 0, 0)])
        connection.execute(batch.insert(), [dict(zip(columns, (2, "core", started, "completed", 1, 1, 0, 0), strict=True))])
        bulk_insert(connection, _NAMES, ("name",), [("only-column",)])
        by_bulk, by_core = connection.execute(select(batch.c.started_at).order_by(batch.c.id)).scalars().all()
        names = connection.execute(select(_NAMES.c.name)).scalars().all()
    assert by_bulk == by_core
    assert names == ["only-column"]


def test_import_raises_the_collector_threshold_only_while_it_runs(hub: Hub) -> None:
    before = gc.get_threshold()
    assert before[0] != IMPORT_GC_THRESHOLD
    seen: list[int] = []

    def failing_source() -> Iterator[ImportUnit]:
        seen.append(gc.get_threshold()[0])
        yield from iter_units([IG_INCLUDED])
        raise RuntimeError("the source failed mid-way")

    hub.import_paths([IG_INCLUDED])
    assert gc.get_threshold() == before
    with pytest.raises(RuntimeError, match="mid-way"):
        hub.import_units(failing_source(), "failing source")
    assert seen == [IMPORT_GC_THRESHOLD]
    assert gc.get_threshold() == before
