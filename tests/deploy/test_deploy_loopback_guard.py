"""The SuperLink guard: non-loopback peers reach only the Fleet API and the health probe
(F-PIL-12, NF-SRS-5). The end-to-end check over a real interface is in test_deploy_plumbing."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from flute.engine.loopback_guard import RemoteFleetOnly, is_loopback_peer, remote_may_access

paths = st.text(alphabet="abcdefghijklmnopqrstuvwxyz/-._", max_size=40).map(lambda p: "/" + p)


@given(st.ip_addresses())
def test_deploy_guard_classifies_peers_like_ipaddress(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    expected = address.is_loopback or bool(mapped and mapped.is_loopback)
    assert is_loopback_peer((str(address), 1234)) is expected


def test_deploy_guard_treats_unknown_peers_as_remote() -> None:
    assert not is_loopback_peer(None)
    assert not is_loopback_peer(("not-an-ip", 1))
    assert is_loopback_peer(["::ffff:127.0.0.1", 1])


@given(paths)
def test_deploy_guard_lets_remote_peers_reach_only_fleet_and_health(path: str) -> None:
    assert remote_may_access(path) == (path.startswith("/v1/fleet/") or path == "/health")


def _call(path: str, client: tuple[str, int]) -> tuple[int | None, bool]:
    reached: list[bool] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        reached.append(True)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "path": path, "client": client}
    asyncio.run(RemoteFleetOnly(inner)(scope, receive, send))
    return sent[0].get("status"), bool(reached)


def test_deploy_guard_answers_403_without_calling_flower() -> None:
    assert _call("/v1/control/start-run", ("192.0.2.7", 5000)) == (403, False)
    assert _call("/v1/runtime/push-messages", ("192.0.2.7", 5000)) == (403, False)
    assert _call("/v1/fleet/pull-messages", ("192.0.2.7", 5000)) == (200, True)
    assert _call("/v1/control/start-run", ("127.0.0.1", 5000)) == (200, True)
