"""How a hub talks to the coordinator about its catalogue entries and access requests.

A hub publishes its datasets' metadata, fetches the requests for its datasets and returns its
owner's decisions. In a deployment that is the coordinator's REST API (`HttpCoordinatorLink`,
with an API token of one of the hub's data owners or stewards); embedded in one process (tests,
demos) the coordinator's `flute.coordinator.registry.Registry` is itself a `CoordinatorLink`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Protocol

from flute.governance.access import AccessDecision, AccessRequest, RequestStatus
from flute.governance.catalogue import DatasetMetadata


#: Environment variable holding the hub's API token at the coordinator (kept out of command lines).
TOKEN_ENV_VAR: Final[str] = "FLUTE_COORDINATOR_TOKEN"


class CoordinatorUnavailable(RuntimeError):
    """The coordinator could not be reached or refused the call; the message says which and why."""


class CoordinatorLink(Protocol):
    def publish(self, hub: str, entries: Sequence[DatasetMetadata], by: str) -> None: ...

    def pending_requests(self, hub: str) -> list[AccessRequest]: ...

    def record_decision(self, hub: str, decision: AccessDecision) -> AccessRequest: ...


class HttpCoordinatorLink:
    """The coordinator's REST API (`flute.coordinator.catalogue_api`) over httpx."""

    def __init__(self, base_url: str, token: str, *, timeout_s: float = 30.0, verify: bool | str = True) -> None:
        import httpx

        self._client = httpx.Client(
            base_url=base_url.rstrip("/"), headers={"Authorization": f"Bearer {token}"}, timeout=timeout_s, verify=verify
        )

    def close(self) -> None:
        self._client.close()

    def publish(self, hub: str, entries: Sequence[DatasetMetadata], by: str) -> None:
        self._call("PUT", f"/catalogue/{hub}", json=[entry.to_json() for entry in entries])

    def pending_requests(self, hub: str) -> list[AccessRequest]:
        found = self._call("GET", "/access-requests", params={"status": RequestStatus.PENDING.value})
        return [AccessRequest.from_json(item) for item in found if item["hub"] == hub]

    def record_decision(self, hub: str, decision: AccessDecision) -> AccessRequest:
        body = decision.to_json()
        body.pop("request_id")
        return AccessRequest.from_json(self._call("POST", f"/access-requests/{decision.request_id}/decision", json=body))

    def _call(self, method: str, path: str, **kwargs: object) -> object:
        import httpx

        try:
            response = self._client.request(method, path, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            raise CoordinatorUnavailable(f"coordinator {self._client.base_url} unreachable for {method} {path}: {exc}") from exc
        if response.status_code >= 400:
            raise CoordinatorUnavailable(f"coordinator refused {method} {path}: HTTP {response.status_code} {response.text[:500]}")
        return None if response.status_code == 204 else response.json()


def link_from_environment(url: str, ca_file: Path | None) -> HttpCoordinatorLink:
    """The link a hub service opens to the coordinator at `url`, with the API token (of one of
    the hub's stewards, roles data_steward) from $FLUTE_COORDINATOR_TOKEN."""
    token = os.environ.get(TOKEN_ENV_VAR, "")
    if not token:
        raise CoordinatorUnavailable(
            f"set {TOKEN_ENV_VAR} to an API token of this hub's steward at the coordinator (POST {url.rstrip('/')}/auth/tokens)"
        )
    if ca_file is not None and not ca_file.is_file():
        raise CoordinatorUnavailable(f"coordinator CA certificate {ca_file} not found")
    return HttpCoordinatorLink(url, token, verify=str(ca_file) if ca_file else True)
