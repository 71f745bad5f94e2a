"""The coordinator's HTTP API (F-HUF-21, F-PIL-20): authentication, /health and the routes
other modules contribute through `router_factories` (one line each)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from fastapi import FastAPI

from flute.coordinator.store import open_coordinator_engine
from flute.governance.policy import SecurityPolicy
from flute.governance.service import RouterFactory, build_app, open_context

TITLE = "FLUTE coordinator"


def router_factories() -> list[RouterFactory]:
    """Where coordinator features plug in their routers (imported here, lazily): each is a
    `RouterFactory` taking the ServiceContext. Every route must use `require(Action...)`."""
    from flute.coordinator.catalogue_api import catalogue_router

    return [catalogue_router]


def create_app(
    home: Path, *, policy: SecurityPolicy | None = None, extra_routers: Iterable[RouterFactory] = (), hub_homes: Sequence[Path] = (),
) -> FastAPI:
    """The coordinator API for the coordinator home `home` (`flute admin init --coordinator-home`).
    `hub_homes`: the hubs it runs studies, statistics and synthetic-data training on in embedded
    mode (single-machine setting, `flute.coordinator.runs`); its synthetic-data workspace is
    `home/synth`."""
    from flute.coordinator.runs import EmbeddedHubs
    from flute.coordinator.runs_api import runs_router_factory
    from flute.coordinator.synth_api import WORKSPACE_DIR, synth_router_factory

    context = open_context(home, open_coordinator_engine(home), organisation=None, policy=policy)
    embedded = EmbeddedHubs.from_homes(hub_homes)
    runs, synth = runs_router_factory(embedded), synth_router_factory(embedded, home / WORKSPACE_DIR)
    return build_app(TITLE, context, [*router_factories(), runs, synth, *extra_routers])
