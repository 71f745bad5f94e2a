"""Hub home, pseudonyms and schema (F-PIL-6, NF-PIL-2/4): keyed and stable pseudonyms, the key
outside the database, migrations matching the models, a clear error for an outdated schema."""

from __future__ import annotations

import importlib
import pkgutil
import stat
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

import flute.hub
from flute.hub.home import CONFIG_FILE, HOME_ENV_VAR, SECRETS_FILE, SQLITE_FILE, HubHomeError, load_key, resolve_home
from flute.hub.models import Base
from flute.hub.node import init_hub, open_hub, upgrade_hub
from flute.hub.pseudonym import Pseudonymizer
from flute.hub.store import HubStore, SchemaBehindError

from .hub_inputs import IG_INCLUDED

PATIENT = {"resourceType": "Patient", "id": "p-1"}
IDENTIFIED = {"resourceType": "Patient", "id": "p-1", "identifier": [{"system": "urn:oid:1.2.3", "value": "MRN-77"}]}


def test_pseudonyms_are_keyed_stable_and_namespaced() -> None:
    key_a, key_b = b"a" * 32, b"b" * 32
    hub_a = Pseudonymizer(key_a, "urn:flute:hub:a")
    assert hub_a.for_patient(PATIENT) == Pseudonymizer(key_a, "urn:flute:hub:a").for_patient(PATIENT)
    assert hub_a.for_patient(PATIENT) != Pseudonymizer(key_b, "urn:flute:hub:a").for_patient(PATIENT)
    assert hub_a.for_patient(PATIENT) != Pseudonymizer(key_a, "urn:flute:hub:other").for_patient(PATIENT)
    # A business identifier links records of one person whatever their resource ids.
    assert hub_a.source_identity(IDENTIFIED) == "urn:oid:1.2.3|MRN-77"
    assert hub_a.for_patient(IDENTIFIED) == hub_a.for_patient({**IDENTIFIED, "id": "other-id"})
    assert len(hub_a.for_patient(PATIENT)) == 64 and "p-1" not in hub_a.for_patient(PATIENT)
    with pytest.raises(ValueError, match="too short"):
        Pseudonymizer(b"short", "ns")


def test_key_is_private_outside_the_database_and_differs_per_hub(tmp_path: Path) -> None:
    pseudonyms = []
    for name in ("a", "b"):
        home = tmp_path / name
        init_hub(home, "same-name")
        assert stat.S_IMODE((home / SECRETS_FILE).stat().st_mode) == 0o600
        with open_hub(home) as hub:
            hub.import_paths([IG_INCLUDED])
            pseudonym = hub.pseudonymizer.for_patient({"resourceType": "Patient", "id": "EXP-S1-Patient"})
        database = (home / SQLITE_FILE).read_bytes() + b"".join(p.read_bytes() for p in home.glob(f"{SQLITE_FILE}-*"))
        key = load_key(home)
        assert key not in database and key.hex().encode() not in database
        assert pseudonym.encode() in database and b"EXP-S1-Patient" in database  # stored FHIR stays in the hub
        pseudonyms.append(pseudonym)
    assert pseudonyms[0] != pseudonyms[1]


def test_open_refuses_a_readable_key_and_a_missing_hub(tmp_path: Path) -> None:
    home = tmp_path / "hub"
    init_hub(home, "h")
    (home / SECRETS_FILE).chmod(0o644)
    with pytest.raises(HubHomeError, match="chmod 600"):
        open_hub(home)
    with pytest.raises(HubHomeError, match="flute hub init"):
        open_hub(tmp_path / "nowhere")
    with pytest.raises(HubHomeError, match="already holds a hub"):
        init_hub(home, "h")


def test_migrations_match_the_models(hub_db_url_or_sqlite: str) -> None:
    # Every hub module declaring tables on the shared metadata (`*models`), e.g. the ledger's.
    for module in pkgutil.iter_modules(flute.hub.__path__):
        if module.name.endswith("models"):
            importlib.import_module(f"flute.hub.{module.name}")
    store = HubStore.create(hub_db_url_or_sqlite)
    with store.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    store.close()


def test_open_refuses_an_outdated_schema(hub_db_url_or_sqlite: str) -> None:
    HubStore.create(hub_db_url_or_sqlite).close()
    store = HubStore.open(hub_db_url_or_sqlite)
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    store.close()
    with pytest.raises(SchemaBehindError, match="flute hub upgrade"):
        HubStore.open(hub_db_url_or_sqlite)


@pytest.mark.postgres
def test_database_password_lives_in_the_secrets_file(tmp_path: Path, postgres_server: Any) -> None:
    url = postgres_server.create_database().replace("postgres@", "postgres:s3cret-pw@")
    home = tmp_path / "hub"
    init_hub(home, "pg", url)
    assert "s3cret-pw" not in (home / CONFIG_FILE).read_text()
    assert "s3cret-pw" in (home / SECRETS_FILE).read_text()
    with open_hub(home) as hub:
        assert hub.store.engine.url.password == "s3cret-pw"
        assert hub.import_paths([IG_INCLUDED]).stored == 7


def test_upgrade_brings_an_empty_database_to_the_current_schema(tmp_path: Path) -> None:
    home = tmp_path / "hub"
    init_hub(home, "h")
    for file in home.glob(f"{SQLITE_FILE}*"):
        file.unlink()
    with pytest.raises(SchemaBehindError, match="no FLUTE schema"):
        open_hub(home)
    upgrade_hub(home)
    with open_hub(home) as hub:
        assert hub.import_paths([IG_INCLUDED]).stored == 7


def test_home_comes_from_option_then_environment_then_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(HOME_ENV_VAR, raising=False)
    assert resolve_home(None) == Path("flute-hub")
    monkeypatch.setenv(HOME_ENV_VAR, str(tmp_path / "env-home"))
    assert resolve_home(None) == tmp_path / "env-home"
    assert resolve_home(tmp_path / "explicit") == tmp_path / "explicit"
