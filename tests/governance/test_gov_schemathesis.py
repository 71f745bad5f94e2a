"""Property-based API testing of both services from their own OpenAPI (F-HUF-21): schemathesis
generates requests for every operation, in-process over ASGI, as an authenticated data-owner
admin (the widest role at a hub) and checks that no response is a server error, that every
JSON response matches its documented schema, and that operations declaring bearer security
refuse requests without it. Session-ending operations (logout) are left out so the caller's
session survives the run."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import ignored_auth, not_a_server_error, response_schema_conformance
from schemathesis.schemas import BaseSchema

from flute.coordinator.app import create_app as create_coordinator_app
from flute.coordinator.home import write_config
from flute.coordinator.store import open_coordinator_engine
from flute.governance import totp
from flute.governance.rbac import Role
from flute.governance.timeutil import utc_now
from flute.hub.node import init_hub
from flute.hub.service import create_app as create_hub_app

from .conftest import PASSWORD

CHECKS = [not_a_server_error, response_schema_conformance, ignored_auth]
EXAMPLES = settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@dataclass(frozen=True)
class Served:
    schema: BaseSchema
    headers: dict[str, str]


def _served(app: FastAPI, org: str) -> Served:
    """The app's schema and the bearer header of a freshly created, logged-in admin of `org`."""
    from fastapi.testclient import TestClient

    identity = app.state.flute_context.identity
    identity.ensure_organisation(org, org)
    user = identity.create_user("fuzz-admin", org, frozenset({Role.DATA_OWNER_ADMIN}), PASSWORD)
    assert user.totp is not None
    login = TestClient(app).post("/auth/login", json={"username": user.username, "password": PASSWORD, "totp": totp.current_code(user.totp.secret, utc_now())})
    assert login.status_code == 200, login.text
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path_regex="logout")
    return Served(schema, {"Authorization": f"Bearer {login.json()['access_token']}"})


@pytest.fixture(scope="module")
def coordinator_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("coordinator")
    write_config(home, None)
    open_coordinator_engine(home, create=True).dispose()
    app = create_coordinator_app(home)
    yield _served(app, "hospital-a")
    app.state.flute_context.engine.dispose()


@pytest.fixture(scope="module")
def hub_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("hub") / "hospital-a"
    init_hub(home, "hospital-a")
    app = create_hub_app(home)
    yield _served(app, "hospital-a")
    app.state.flute_context.engine.dispose()


def _fuzz(served: Served) -> int:
    """Run every operation's generated cases (schemathesis' pytest plugin does not support
    this pytest, so the operations are driven here); the number of operations exercised."""
    operations = [result.ok() for result in served.schema.get_all_operations()]
    for operation in operations:

        @given(case=operation.as_strategy())
        @EXAMPLES
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=served.headers, checks=CHECKS)

        run()
    return len(operations)


@pytest.mark.slow
def test_coordinator_api_conforms_to_its_openapi(coordinator_served: Served) -> None:
    assert _fuzz(coordinator_served) >= 10


@pytest.mark.slow
def test_hub_api_conforms_to_its_openapi(hub_served: Served) -> None:
    assert _fuzz(hub_served) >= 10
