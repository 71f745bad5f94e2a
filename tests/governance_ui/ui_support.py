"""Fixtures of the governance tests: a real hub home filled with simulated FHIR patients, its
service app (the hub's own app factory with the UI and FHIR routers), a coordinator registry
on a real coordinator database, users with real passwords and TOTP, and a uvicorn server on
loopback for browser tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from flute.cohort.simulate import simulate_cohort
from flute.coordinator.registry import Registry
from flute.governance.access import AccessRequest
from flute.governance.audit import AuditTrail
from flute.governance.catalogue import DatasetDeclaration
from flute.governance.documents import PolicyKind, current_policy
from flute.governance.rbac import Role
from flute.governance.service import ServiceContext
from flute.hub.consent import ConsentRegister
from flute.hub.node import init_hub, open_hub

HUB = "hospital-a"
OWNER, OWNER_PASSWORD = "owner-a", "correct horse battery staple 42"
RESEARCHER, RESEARCHER_ORG = "researcher-1", "uni-research"

DECLARATION = DatasetDeclaration(
    dataset="cspca-biopsies",
    title="csPCa biopsy cohort",
    description="Men with MRI before prostate biopsy, 2016-2021, BCN-RC variables",
    conditions_of_use="Use only for **csPCa risk models**. <script>alert('x')</script> No re-identification.",
    contact="dpo@hospital-a.example",
    guidance="See [the IG](https://hl7.eu/fhir/ig/flute) before requesting.",
)


@dataclass
class HubWorld:
    home: Path
    coordinator_home: Path
    registry: Registry
    owner_totp_secret: str


def filled_hub(tmp: Path, scale: float = 0.03) -> Path:
    """A hub home with the first simulated site's patients imported."""
    simulated = tmp / "simulated"
    simulate_cohort(simulated, seed=3, fmt="ndjson", scale=scale)
    site_dir = sorted(p for p in simulated.iterdir() if p.is_dir())[0]
    home = tmp / "hub"
    init_hub(home, HUB)
    with open_hub(home) as hub:
        hub.import_paths([site_dir])
    return home


def coordinator_registry(home: Path) -> Registry:
    from flute.coordinator.store import open_coordinator_engine
    from flute.governance.keys import load_node_keys

    home.mkdir(parents=True)
    engine = open_coordinator_engine(home, create=True)
    return Registry(engine, AuditTrail(load_node_keys(home).audit_key))


def build_world(tmp: Path) -> HubWorld:
    """A governed hub (one declared dataset, a data-owner admin with TOTP) and a coordinator on
    which a researcher who accepted the policies asked for access."""
    from flute.hub.service import create_app

    home = filled_hub(tmp)
    app = create_app(home)
    context: ServiceContext = app.state.flute_context
    context.identity.ensure_organisation(HUB, "Hospital A")
    owner = context.identity.create_user(OWNER, HUB, frozenset({Role.DATA_OWNER_ADMIN}), OWNER_PASSWORD)
    assert owner.totp is not None
    with open_hub(home) as hub:
        ConsentRegister(hub.store, HUB, context.audit).declare(DECLARATION, "setup")
    registry = coordinator_registry(tmp / "coordinator")
    with open_hub(home) as hub:
        registry.publish(HUB, ConsentRegister(hub.store, HUB, None).catalogue_entries(), "setup")
    for kind in PolicyKind:
        registry.accept_policy(RESEARCHER, kind, current_policy(kind).version)
    context.engine.dispose()
    return HubWorld(home, tmp / "coordinator", registry, owner.totp.secret)


def file_request(registry: Registry, study: str = "cspca-lr", fields: tuple[str, ...] = ("psa", "pirads", "dre", "ageAtBiopsy")) -> AccessRequest:
    return registry.request_access(
        study=study, researcher=RESEARCHER, researcher_org=RESEARCHER_ORG, hub=HUB, dataset=DECLARATION.dataset,
        fields=fields, purpose="External validation of a csPCa risk model", epsilon=3.0, delta=1e-6,
    )


def ui_app(world: HubWorld) -> FastAPI:
    from flute.hub.service import create_app
    from flute.hub.ui.pages import connect_coordinator

    app = create_app(world.home)
    connect_coordinator(app, world.registry)
    return app


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def live_server() -> Iterator[Callable[[FastAPI], str]]:
    """Start apps under uvicorn on loopback; yields start(app) -> base URL; stops them after."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: FastAPI) -> str:
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start on loopback within 20 s")
            time.sleep(0.05)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = (
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
)


@contextmanager
def chromium_page(user_data_dir: Path) -> Iterator[Any]:
    """A page of a real headless Chromium (Debian's, driven by Playwright over CDP) with a fresh
    profile in `user_data_dir`."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} missing: run scripts/ensure-test-services.sh (installs Debian's chromium)")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(user_data_dir), executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_FLAGS),
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def sign_in(page: Any, base: str, world: HubWorld) -> None:
    """Sign in as the data owner through the login form (password + current TOTP code)."""
    import pyotp

    page.goto(f"{base}/ui/")
    page.wait_for_url(f"{base}/ui/login")
    page.fill("input[name=username]", OWNER)
    page.fill("input[name=password]", OWNER_PASSWORD)
    page.fill("input[name=totp]", pyotp.TOTP(world.owner_totp_secret).now())
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/ui/")
