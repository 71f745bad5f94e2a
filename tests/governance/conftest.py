"""Fixtures of the governance tests: real nodes (coordinator database migrated by Alembic,
real keys, argon2, TOTP) whose identity service reads time from a controllable clock, so
expiry, idle timeout and back-off are tested without sleeping."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from flute.coordinator.home import write_config
from flute.coordinator.store import open_coordinator_engine
from flute.governance import totp
from flute.governance.audit import AuditTrail
from flute.governance.identity import IdentityService, NewUser
from flute.governance.keys import load_node_keys
from flute.governance.policy import SecurityPolicy
from flute.governance.rbac import Role
from flute.governance.service import RouterFactory, ServiceContext, build_app

PASSWORD = "correct horse battery 42"
#: Small thresholds so lockout tests need few (slow, argon2) attempts.
TEST_POLICY = SecurityPolicy(
    lockout_threshold=3, address_threshold=6, lockout_base=timedelta(seconds=10), lockout_max=timedelta(minutes=5),
    idle_timeout=timedelta(minutes=15), access_ttl=timedelta(minutes=10),
)


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime(2026, 11, 22, 12, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class Node:
    """A governed node under test: its context (real DB, keys, audit) and a clock."""

    context: ServiceContext
    clock: Clock

    @property
    def identity(self) -> IdentityService:
        return self.context.identity

    @property
    def engine(self) -> Engine:
        return self.context.engine

    def add_user(self, username: str, org: str, *roles: Role) -> NewUser:
        self.identity.ensure_organisation(org, org)
        return self.identity.create_user(username, org, frozenset(roles), PASSWORD)

    def app(self, *factories: RouterFactory) -> FastAPI:
        return build_app("test node", self.context, factories)

    def login(self, client: TestClient, user: NewUser) -> dict[str, str]:
        """Log `user` in (with a TOTP code when enrolled); the token response."""
        body = {"username": user.username, "password": PASSWORD}
        if user.totp is not None:
            body["totp"] = totp.current_code(user.totp.secret, self.clock.now)
        response = client.post("/auth/login", json=body)
        assert response.status_code == 200, response.text
        return response.json()


def make_node(home: Path, organisation: str | None, db_url: str | None = None, policy: SecurityPolicy = TEST_POLICY) -> Node:
    write_config(home, db_url)
    engine = open_coordinator_engine(home, create=True)
    keys = load_node_keys(home)
    clock = Clock()
    audit = AuditTrail(key=keys.audit_key, actor="test")
    identity = IdentityService(engine, token_key=keys.token_key, audit=audit, organisation=organisation, policy=policy, clock=clock)
    return Node(ServiceContext(home=home, engine=engine, identity=identity, audit=audit, organisation=organisation), clock)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    """A coordinator-like node (serves no single organisation) on SQLite."""
    made = make_node(tmp_path / "node", None)
    yield made
    made.engine.dispose()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
