"""The hub's HTTP API, the server other nodes and the data owner's staff talk to (F-HUF-21,
F-PIL-12/20): authentication, /health and the routes other modules contribute through
`router_factories` (one line each). The hub serves one organisation (its hub name): grants
limited to the caller's own organisation work only for that organisation's members."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from fastapi import FastAPI

from flute.governance.policy import SecurityPolicy
from flute.governance.service import RouterFactory, build_app, open_context
from flute.hub.home import connection_url, load_config
from flute.hub.store import HubStore


def router_factories() -> list[RouterFactory]:
    """Where hub features plug in their routers (imported here, lazily): each is a
    `RouterFactory` taking the ServiceContext. Every route must use `require(Action...)`."""
    from flute.hub.fhir_api import fhir_router
    from flute.hub.ui.pages import ui_router

    return [ui_router, fhir_router]


def create_app(home: Path, *, policy: SecurityPolicy | None = None, extra_routers: Iterable[RouterFactory] = ()) -> FastAPI:
    """The hub API for the hub home `home` (`flute hub init`, then `flute admin init --home`)."""
    config = load_config(home)
    store = HubStore.open(connection_url(home, config))
    context = open_context(home, store.engine, organisation=config.name, policy=policy)
    return build_app(f"FLUTE hub {config.name}", context, [*router_factories(), *extra_routers])
