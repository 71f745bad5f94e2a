"""The coordinator's study/statistics routes refuse before any hub is asked (F-SRS-2/9,
F-PIL-20): the wrong role, no approved access request, an unknown hub, a refused spec, a
coordinator without hubs, and someone else's job. Real database, keys and tokens."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from flute.coordinator.registry import Registry
from flute.coordinator.runs import EmbeddedHubs
from flute.coordinator.runs_api import runs_router_factory
from flute.governance.access import AccessDecision
from flute.governance.catalogue import DatasetDeclaration, DatasetMetadata, VariableAvailability
from flute.governance.documents import PolicyKind, current_policy
from flute.governance.rbac import Role

from governance.conftest import Node, bearer, make_node

STUDY = "cspca-refusals"
SPEC = {"study_id": STUDY, "name": "refusals", "cohort": {"variables": ["psa", "pirads"]}, "model": {"name": "logistic_regression"}}
STATS = {"study": STUDY, "variables": ["psa"], "kind": "mean", "pet": "dp", "epsilon": 0.5}


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[tuple[Node, TestClient]]:
    node = make_node(tmp_path / "coordinator", None)
    hubs = EmbeddedHubs({"hospital-a": tmp_path / "hospital-a", "hospital-b": tmp_path / "hospital-b"})
    with TestClient(node.app(runs_router_factory(hubs))) as client:
        yield node, client
    node.engine.dispose()


def _token(node: Node, client: TestClient, username: str, role: Role) -> dict[str, str]:
    return bearer(node.login(client, node.add_user(username, "uni-research", role))["access_token"])


def test_only_granted_researchers_run_and_only_on_known_hubs(coordinator: tuple[Node, TestClient]) -> None:
    node, client = coordinator
    admin = _token(node, client, "platform-root", Role.PLATFORM_ADMIN)
    assert client.post("/statistics", json=STATS, headers=admin).status_code == 403  # platform admins read no data
    assert client.post("/studies", json={"spec": SPEC}, headers=admin).status_code == 403
    researcher = _token(node, client, "researcher-1", Role.RESEARCHER)
    refused = client.post("/statistics", json=STATS, headers=researcher)
    assert refused.status_code == 403 and "['hospital-a', 'hospital-b']" in refused.json()["detail"]
    unknown = client.post("/statistics", json={**STATS, "hubs": ["hospital-z"]}, headers=researcher)
    assert unknown.status_code == 400 and "no hub named ['hospital-z']" in unknown.json()["detail"]
    bad_spec = client.post("/studies", json={"spec": {**SPEC, "model": {"name": "deep_net"}}}, headers=researcher)
    assert bad_spec.status_code == 400 and "study spec refused" in bad_spec.json()["detail"]

    registry = Registry(node.engine, node.context.audit)
    node.identity.ensure_organisation("hospital-a", "hospital-a")
    for kind in PolicyKind:
        registry.accept_policy("researcher-1", kind, current_policy(kind).version)
    # An approval of hospital-a alone leaves hospital-b refusing.
    registry.publish("hospital-a", [_entry("hospital-a")], "steward")
    request = registry.request_access(
        study=STUDY, researcher="researcher-1", researcher_org="uni-research", hub="hospital-a", dataset="biopsies",
        fields=["psa"], purpose="validation", epsilon=1.0, delta=0.0,
    )
    registry.record_decision("hospital-a", AccessDecision(request.request_id, True, ("psa",), 1.0, 0.0, "", "dpo", datetime.now(UTC)))
    still = client.post("/statistics", json=STATS, headers=researcher)
    assert still.status_code == 403 and "['hospital-b']" in still.json()["detail"]


def test_jobs_are_private_and_a_coordinator_without_hubs_says_so(tmp_path: Path) -> None:
    node = make_node(tmp_path / "coordinator", None)
    with TestClient(node.app(runs_router_factory(EmbeddedHubs({})))) as client:
        researcher = _token(node, client, "researcher-1", Role.RESEARCHER)
        none = client.post("/statistics", json=STATS, headers=researcher)
        assert none.status_code == 409 and "--hub HOME" in none.json()["detail"]
        assert client.get("/studies/0123456789abcdef", headers=researcher).status_code == 404
        assert client.get("/studies/0123456789abcdef/result").status_code == 401
    node.engine.dispose()


def _entry(hub: str) -> DatasetMetadata:
    declaration = DatasetDeclaration("biopsies", "Biopsy cohort", "Men with MRI before biopsy", "research only", f"dpo@{hub}.example")
    return DatasetMetadata(hub, declaration, "100-499", (VariableAvailability("psa", "100%"),), None, datetime.now(UTC))
