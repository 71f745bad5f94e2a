"""The governance schema: the coordinator's migrations and the hub's migrations create exactly
the tables the models declare, on SQLite and PostgreSQL, with a single head each; the audit
chain starts from its genesis head."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from flute.coordinator.home import write_config
from flute.coordinator.registry_models import RegistryBase
from flute.coordinator.store import MIGRATIONS_DIR, open_coordinator_engine
from flute.governance.audit import chain_head
from flute.governance.models import GovernanceBase
from flute.governance.schema_0001 import GENESIS_HASH
from flute.hub.store import MIGRATIONS_DIR as HUB_MIGRATIONS_DIR


@pytest.mark.parametrize("directory", [MIGRATIONS_DIR, HUB_MIGRATIONS_DIR], ids=["coordinator", "hub"])
def test_one_head(directory: Path) -> None:
    config = Config()
    config.set_main_option("script_location", str(directory))
    assert len(ScriptDirectory.from_config(config).get_heads()) == 1


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_coordinator_migrations_match_the_models(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = None if backend == "sqlite" else request.getfixturevalue("postgres_server").create_database()
    write_config(tmp_path, url)
    engine = open_coordinator_engine(tmp_path, create=True)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), [GovernanceBase.metadata, RegistryBase.metadata]) == []
        assert chain_head(connection).hash == GENESIS_HASH
    engine.dispose()
