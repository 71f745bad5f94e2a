"""Fixtures of the hub tests: a fresh hub on SQLite and on a real PostgreSQL server, so the
same tests prove the same results on both (NF-PIL-2/4 acceptance)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flute.hub.node import Hub, init_hub, open_hub


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """None = the default SQLite file in the hub home; else a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("postgres_server").create_database()


@pytest.fixture
def hub(tmp_path: Path, db_url: str | None) -> Iterator[Hub]:
    home = tmp_path / "hub"
    init_hub(home, "test-hospital", db_url)
    with open_hub(home) as opened:
        yield opened


@pytest.fixture
def hub_db_url_or_sqlite(tmp_path: Path, db_url: str | None) -> str:
    """A database URL for store-level tests: a SQLite file or a fresh PostgreSQL database."""
    return db_url or f"sqlite:///{tmp_path / 'store.sqlite3'}"
