"""Deployment engine on loopback: a SuperLink and hub SuperNodes as real processes, TLS on every
link, SuperNode authentication against the enrolment list (URS-4, F-SRS-6, F-PIL-12, F-HUF-21,
NF-SRS-5). Runs the plumbing app of this folder; the FLUTE study apps have their own test."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from flute.engine import deploy, pki
from .plumbing_app import hub_answer

pytestmark = pytest.mark.slow

HUBS = ("hospital-a", "hospital-b", "hospital-c")
PLUMBING_SOURCE = {"plumbing_app.py": (Path(__file__).parent / "plumbing_app.py").read_bytes()}


@dataclass
class Deployment:
    root: Path
    layout: pki.PkiLayout
    coordinator: deploy.Coordinator
    hubs: dict[str, deploy.HubServer]
    homes: dict[str, Path]
    rogue: deploy.HubServer


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("deploy")
    layout = pki.init_pki(root / "pki")
    for hub in HUBS:
        pki.issue_hub_key(layout.root, hub)
    # A hub whose key was made by a different PKI and never enrolled at this coordinator.
    rogue_key = pki.issue_hub_key(pki.init_pki(root / "rogue-pki").root, "hospital-a").private_key_path
    assert rogue_key is not None

    port = deploy.free_port()
    address = f"127.0.0.1:{port}"
    homes = {hub: root / "homes" / hub for hub in HUBS}
    coordinator = deploy.Coordinator(layout.root, root / "coordinator", host="0.0.0.0", port=port)
    hubs: dict[str, deploy.HubServer] = {}
    rogue: deploy.HubServer | None = None
    try:
        for hub in HUBS:
            hubs[hub] = deploy.HubServer(
                hub, homes[hub], address, layout.ca_cert, layout.hub_private_key(hub), root / "hubs" / hub
            )
        rogue = deploy.HubServer("rogue", root / "homes" / "rogue", address, layout.ca_cert, rogue_key, root / "hubs" / "rogue")
        coordinator.control.wait_for_hubs(HUBS)
        yield Deployment(root, layout, coordinator, hubs, homes, rogue)
    finally:
        deploy.stop_all(server.process for server in [*hubs.values(), *([rogue] if rogue else [])])
        coordinator.stop()


def test_deploy_study_completes_on_three_authenticated_hubs(deployment: Deployment) -> None:
    out = deployment.root / "out-ok"
    bundle = deploy.AppBundle(
        "plumbing_app:server_app", "plumbing_app:client_app", {"output-dir": str(out)}, PLUMBING_SOURCE
    )
    status = deployment.coordinator.control.run(bundle, timeout_s=120)
    assert status.completed
    answers = json.loads((out / "answers.json").read_text())
    expected = {hub: hub_answer(hub, str(deployment.homes[hub].resolve())) for hub in HUBS}
    assert answers == expected


def test_deploy_unenrolled_hub_is_refused(deployment: Deployment) -> None:
    returncode = deployment.rogue.process.wait(30)
    assert returncode is not None and returncode != 0, "a SuperNode with an unenrolled key kept running"
    assert "Failed to activate SuperNode" in deployment.rogue.process.log_tail(60)
    registered = {hub.name for hub in deployment.coordinator.control.hubs()}
    assert registered == set(HUBS)
    assert all(server.process.alive for server in deployment.hubs.values())


def test_deploy_failed_run_is_reported_with_its_reason(deployment: Deployment) -> None:
    bundle = deploy.AppBundle(
        "plumbing_app:failing_server_app", "plumbing_app:client_app", {"output-dir": ""}, PLUMBING_SOURCE
    )
    with pytest.raises(deploy.RunFailed, match="plumbing failure requested by the test") as failure:
        deployment.coordinator.control.run(bundle, timeout_s=120)
    assert failure.value.status.sub_status == "failed"


def test_deploy_superlink_speaks_only_tls(deployment: Deployment) -> None:
    port = deployment.coordinator.port
    # Plain HTTP gets no HTTP answer from a TLS listener.
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
    # TLS without the deployment's CA is refused by the client: the certificate is private.
    with pytest.raises(ssl.SSLCertVerificationError):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")
    # With the pinned CA the handshake verifies and the API answers.
    reply = httpx.get(f"https://127.0.0.1:{port}/health", verify=ssl.create_default_context(cafile=str(deployment.layout.ca_cert)))
    assert reply.status_code == 200


def _non_loopback_ipv4() -> str | None:
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return str(address.address)
    return None


def test_deploy_control_api_is_loopback_only(deployment: Deployment) -> None:
    external = _non_loopback_ipv4()
    if external is None:
        pytest.skip("this machine has no non-loopback IPv4 address to connect from")
    port = deployment.coordinator.port
    # The certificate names loopback only, so skip hostname checks; trust is still the private CA.
    context = ssl.create_default_context(cafile=str(deployment.layout.ca_cert))
    context.check_hostname = False
    with httpx.Client(verify=context, timeout=5) as remote:
        control = remote.post(f"https://{external}:{port}/v1/control/list-nodes", content=b"")
        runtime = remote.post(f"https://{external}:{port}/v1/runtime/get-run", content=b"")
        fleet = remote.post(f"https://{external}:{port}/v1/fleet/pull-messages", content=b"")
        health = remote.get(f"https://{external}:{port}/health")
    assert control.status_code == 403
    assert runtime.status_code == 403
    assert fleet.status_code != 403  # reaches Flower's Fleet API (which then rejects the unsigned request)
    assert health.status_code == 200
