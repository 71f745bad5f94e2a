"""A real FHIR R4 server for the tests: Medplum's fhir-router with its in-memory repository
(tests/fhir_server/server.js), started with Node on a free loopback port and stopped afterwards.

The wrapper adds FHIR paging links, optional bearer-token authentication and a test-only control
endpoint that makes the next N FHIR requests fail (see server.js). Without Node.js or the npm
packages (scripts/install-fhir-test-server.sh installs them) the tests that need it are skipped
with a loud message.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

SERVER_DIR = Path(__file__).resolve().parent / "fhir_server"
_STARTUP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class FhirTestServer:
    port: int
    token: str | None

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root}/fhir/R4"

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def configure(self, *, fail_next: int = 0, fail_status: int = 503, retry_after: str | None = None, relative_links: bool = False) -> None:
        """Set the failure injection and link style; also clears the request log."""
        body = {"fail_next": fail_next, "fail_status": fail_status, "retry_after": retry_after, "relative_links": relative_links}
        httpx.post(f"{self.root}/__test__/config", json=body).raise_for_status()

    def requests(self) -> list[dict[str, Any]]:
        """FHIR requests seen since the last `configure`: method, url, authorization."""
        response = httpx.get(f"{self.root}/__test__/requests")
        response.raise_for_status()
        return response.json()

    def post_bundle(self, bundle: dict[str, Any]) -> dict[str, Any]:
        """POST a batch or transaction Bundle to the base; every entry must succeed."""
        response = httpx.post(self.base_url, json=bundle, headers={**self.auth_headers, "Content-Type": "application/fhir+json"}, timeout=60)
        response.raise_for_status()
        answer = response.json()
        failed = [e["response"] for e in answer.get("entry", []) if not e["response"]["status"].startswith("2")]
        assert not failed, failed
        return answer


@contextmanager
def running_fhir_server(token: str | None = None) -> Iterator[FhirTestServer]:
    node = shutil.which("node")
    if node is None or not (SERVER_DIR / "node_modules" / "@medplum" / "fhir-router").is_dir():
        pytest.skip("FHIR test server not installed (Node.js or tests/fhir_server/node_modules missing): run scripts/install-fhir-test-server.sh")
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            [node, "server.js", "0"],
            cwd=SERVER_DIR,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env={**os.environ, "FHIR_TEST_TOKEN": token or ""},
        )
        try:
            assert process.stdout is not None
            ready, _, _ = select.select([process.stdout], [], [], _STARTUP_TIMEOUT_S)
            line = process.stdout.readline().decode() if ready else ""
            if not line.startswith("LISTENING "):
                stderr.seek(0)
                raise RuntimeError(f"FHIR test server did not start: {line!r} {stderr.read().decode(errors='replace')[-2000:]}")
            yield FhirTestServer(int(line.split()[1]), token)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
