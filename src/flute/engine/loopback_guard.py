"""Keep the SuperLink's Control and Runtime APIs loopback-only (F-PIL-12, NF-SRS-5).

Flower 1.41 serves its Fleet API (what hubs talk to), its Control API (register nodes, start
and stop runs; unauthenticated in the open-source SuperLink) and its Runtime API (what the
ServerApp uses to send messages to hubs) on ONE HTTPS port. A coordinator reachable by hubs
would therefore also let any hub start runs or enrol nodes. This ASGI wrapper allows remote
peers the Fleet API and the health probe only; every other path answers 403 unless the peer
is on loopback, where the coordinator's own services (SuperExec, `flute coordinator submit`)
run.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REMOTE_ALLOWED_PREFIXES: tuple[str, ...] = ("/v1/fleet/",)
REMOTE_ALLOWED_PATHS: frozenset[str] = frozenset({"/health"})
_REFUSAL = b"only the Fleet API is served to non-loopback peers\n"


def is_loopback_peer(client: tuple[str, int] | list[Any] | None) -> bool:
    """True when the ASGI `client` entry is a loopback address (unknown peers are remote)."""
    if not client:
        return False
    try:
        address = ipaddress.ip_address(str(client[0]))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def remote_may_access(path: str) -> bool:
    """Whether a non-loopback peer may request `path`."""
    return path in REMOTE_ALLOWED_PATHS or any(path.startswith(prefix) for prefix in REMOTE_ALLOWED_PREFIXES)


class RemoteFleetOnly:
    """ASGI middleware: non-loopback peers reach the Fleet API and health probe, nothing else."""

    def __init__(self, app: AsgiApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not is_loopback_peer(scope.get("client")):
            if not remote_may_access(str(scope.get("path", ""))):
                await _refuse(scope, send)
                return
        await self._app(scope, receive, send)


async def _refuse(scope: Scope, send: Send) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(_REFUSAL)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": _REFUSAL})
