"""The catalogue and access-request flow over real HTTP on loopback (F-HUF-1, F-PIL-16/17/18,
NF-PIL-7/9): a hub publishes through the coordinator API with its steward's API token, a
researcher uses the SDK (`flute.connect`) to search, accept the policies and ask for access, the
hub fetches the request, its owner decides on the hub, the hub relays the decision and the SDK
sees it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from rich.console import Console

import flute
from flute.governance.access import AccessDecision, RequestStatus
from flute.governance.link import CoordinatorUnavailable, HttpCoordinatorLink
from flute.governance.rbac import Role
from flute.hub.consent import ConsentRegister
from flute.hub.node import open_hub
from flute.sdk import FluteApiError

from .ui_support import DECLARATION, HUB, RESEARCHER_ORG, filled_hub, live_server  # noqa: F401

PASSWORD = "a long enough passphrase 7"
pytestmark = pytest.mark.slow


def _api_token(context: object, username: str, org: str, role: Role) -> str:
    identity = context.identity  # type: ignore[attr-defined]
    identity.create_user(username, org, frozenset({role}), PASSWORD)
    pair = identity.login(username, PASSWORD, None, "127.0.0.1")
    return identity.create_api_token(pair.principal, "sdk")[1]


def test_researcher_sdk_and_hub_link_over_http(tmp_path: Path, live_server: Callable[[FastAPI], str]) -> None:
    from flute.coordinator.app import create_app
    from flute.coordinator.store import open_coordinator_engine

    home = filled_hub(tmp_path)
    with open_hub(home) as hub:
        ConsentRegister(hub.store, HUB, None).declare(DECLARATION, "owner")
    coordinator_home = tmp_path / "coordinator"
    coordinator_home.mkdir()
    open_coordinator_engine(coordinator_home, create=True).dispose()
    app = create_app(coordinator_home)
    context = app.state.flute_context
    for org in (HUB, "hospital-b", RESEARCHER_ORG):
        context.identity.ensure_organisation(org, org)
    steward = _api_token(context, "steward-a", HUB, Role.DATA_STEWARD)
    other_steward = _api_token(context, "steward-b", "hospital-b", Role.DATA_STEWARD)
    researcher = _api_token(context, "researcher-1", RESEARCHER_ORG, Role.RESEARCHER)
    base = live_server(app)

    link = HttpCoordinatorLink(base, steward)
    with open_hub(home) as hub:
        register = ConsentRegister(hub.store, HUB, None)
        link.publish(HUB, register.catalogue_entries(), "steward-a")
        with pytest.raises(CoordinatorUnavailable, match="HTTP 403"):
            HttpCoordinatorLink(base, other_steward).publish(HUB, register.catalogue_entries(), "steward-b")

    with pytest.raises(FluteApiError, match="HTTP 401"):
        flute.connect(base, "not-a-token")
    client = flute.connect(base, researcher)
    found = client.search("biopsy cohort", variables=["psa", "pirads"])
    assert [entry.key for entry in found] == [(HUB, DECLARATION.dataset)]
    assert len(client.search("no such words")) == 0
    assert "<table>" in found._repr_html_() and DECLARATION.dataset in found._repr_html_()
    console = Console(record=True, width=200)
    console.print(found)
    assert DECLARATION.dataset in console.export_text()
    assert client.dataset(HUB, DECLARATION.dataset).declaration.conditions_of_use == DECLARATION.conditions_of_use

    with pytest.raises(FluteApiError, match="accept the current terms and privacy"):
        client.request_access("cspca-lr", HUB, DECLARATION.dataset, ["psa"], purpose="validation", epsilon=1.0)
    assert {p.kind for p in client.accept_policies()} == {"terms", "privacy"} and client.pending_policies() == []
    with pytest.raises(FluteApiError, match="HTTP 400.*unknown field"):
        client.request_access("cspca-lr", HUB, DECLARATION.dataset, ["gleason"], purpose="validation", epsilon=1.0)
    request = client.request_access("cspca-lr", HUB, DECLARATION.dataset, ["psa", "pirads"], purpose="validation", epsilon=1.0, delta=1e-6)
    assert request.status is RequestStatus.PENDING
    with pytest.raises(TimeoutError, match="1 of 1 access request"):
        client.wait_for_decisions([request], timeout_s=0.2, poll_s=0.05, progress=False)

    decision = AccessDecision(request.request_id, True, ("psa",), 0.5, 1e-7, "", "owner-a", datetime.now(UTC))
    refused = httpx.post(f"{base}/access-requests/{request.request_id}/decision", json={**decision.to_json()},
                         headers={"Authorization": f"Bearer {researcher}"})
    assert refused.status_code == 403  # researchers cannot decide for a hub
    assert [r.request_id for r in link.pending_requests(HUB)] == [request.request_id]
    with open_hub(home) as hub:
        ConsentRegister(hub.store, HUB, None).decide(request, decision)
    assert link.record_decision(HUB, decision).status is RequestStatus.APPROVED
    assert link.pending_requests(HUB) == []
    decided = client.wait_for_decisions([request], timeout_s=5, poll_s=0.05, progress=False)
    assert [r.status for r in decided] == [RequestStatus.APPROVED]
    with pytest.raises(CoordinatorUnavailable, match="already decided"):
        link.record_decision(HUB, decision)
    client.close()
    link.close()
