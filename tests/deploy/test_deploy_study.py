"""A FLUTE study on a real deployment, driven only through the CLI as operators would: `flute pki`,
`flute coordinator serve`, three `flute hub serve` processes on hub homes filled by `flute hub
import`, and `flute coordinator submit` (URS-4, F-SRS-6, F-PIL-12, F-HUF-21, NF-SRS-5), with and
without secure aggregation (URS-15: hub identity keys enrolled through `flute pki issue`).

The deployed result must equal the embedded engine's result on the same hub homes and spec: the
deployment changes where code runs, never what it computes.
"""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest

from flute.engine import deploy
from flute.engine.apps import client_app, server_app
from flute.engine.embedded import HubBinding, run_embedded, study_run_config
from flute.engine.result import StudyResult
from flute.engine.spec import StudySpec

pytestmark = pytest.mark.slow

FLUTE = str(Path(sys.executable).parent / "flute")
SITES = ("vhebron", "irst", "chu-liege")
SPEC = {
    "study_id": "deploy-equivalence",
    "name": "Deployed vs embedded",
    "cohort": {"variables": ["ageAtBiopsy", "psa", "prostateVolume", "pirads"]},
    "model": {"name": "logistic_regression", "l2": 0.1},
    "training": {"rounds": 10},
    "evaluation": {"cv_folds": 0, "leave_one_hub_out": False},
    "seed": 7,
}


def _flute(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([FLUTE, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"flute {' '.join(map(str, args))} failed:\n{done.stdout}\n{done.stderr}"
    return done


def _serve(*args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen([FLUTE, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_healthy(port: int, ca_cert: Path, server: subprocess.Popen[str]) -> None:
    context = ssl.create_default_context(cafile=str(ca_cert))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, f"coordinator exited: {server.communicate()}"
        try:
            if httpx.get(f"https://127.0.0.1:{port}/health", verify=context, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.3)
    raise AssertionError("coordinator did not become healthy")


@pytest.fixture(scope="module")
def hub_homes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("homes")
    _flute("simulate", "--out", root / "fhir", "--scale", "0.1", "--seed", "3")
    homes = {}
    for site in SITES:
        homes[site] = root / site
        _flute("hub", "init", "--name", site, "--home", homes[site])
        _flute("hub", "import", *sorted((root / "fhir" / site).glob("*.json")), "--home", homes[site])
    return homes


def _serve_deployment(pki: Path, hub_homes: dict[str, Path], state: Path, services: list[subprocess.Popen[str]]) -> str:
    """Start `flute coordinator serve` and one `flute hub serve` per site on `pki`; the address."""
    port = deploy.free_port()
    coordinator = _serve("coordinator", "serve", "--pki", pki, "--port", str(port), "--state", state / "coordinator")
    services.append(coordinator)
    _wait_healthy(port, pki / "ca.pem", coordinator)
    address = f"127.0.0.1:{port}"
    for site in SITES:
        services.append(
            _serve("hub", "serve", "--home", hub_homes[site], "--coordinator", address, "--pki", pki,
                   "--key", pki / "hubs" / f"{site}.key", "--state", state / "nodes" / site)
        )  # fmt: skip
    return address


def _submit(spec: dict[str, object], pki: Path, address: str, tmp_path: Path) -> Path:
    """`flute coordinator submit` a study on all three hubs; the directory holding its result."""
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    out = tmp_path / "result"
    submitted = _flute("coordinator", "submit", spec_path, "--pki", pki, "--port", address.rsplit(":", 1)[1],
                       "--out", out, "--hubs", "3", "--timeout", "300", timeout=360)  # fmt: skip
    assert "completed" in submitted.stdout
    return out


def _embedded(spec: dict[str, object], hub_homes: dict[str, Path]) -> StudyResult:
    return run_embedded(
        server_app,
        client_app,
        [HubBinding(site, home=hub_homes[site]) for site in SITES],
        study_run_config(StudySpec.from_mapping(spec)),
    )


@pytest.fixture()
def services() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in started:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def test_deploy_study_via_cli_equals_embedded_run(
    tmp_path: Path, hub_homes: dict[str, Path], services: list[subprocess.Popen[str]]
) -> None:
    pki = tmp_path / "pki"
    _flute("pki", "init", "--dir", pki)
    for site in SITES:
        _flute("pki", "issue", "--dir", pki, "--hub", site)
    _flute("pki", "init", "--dir", tmp_path / "other-pki")
    _flute("pki", "issue", "--dir", tmp_path / "other-pki", "--hub", "vhebron")

    address = _serve_deployment(pki, hub_homes, tmp_path, services)
    # Right CA, well-formed key, but never enrolled at this coordinator: refused, exits 1.
    rogue = _serve("hub", "serve", "--home", hub_homes["vhebron"], "--coordinator", address, "--pki", pki,
                   "--key", tmp_path / "other-pki" / "hubs" / "vhebron.key", "--state", tmp_path / "nodes" / "rogue")  # fmt: skip
    services.append(rogue)

    out = _submit(SPEC, pki, address, tmp_path)

    assert rogue.wait(30) == 1
    assert "Failed to activate SuperNode" in rogue.communicate()[1]

    deployed = deploy.read_study_result(out)
    embedded = _embedded(SPEC, hub_homes)
    assert {count.hub for count in deployed.hubs} == set(SITES)
    assert deployed.final_model.rounds == embedded.final_model.rounds
    np.testing.assert_allclose(deployed.final_model.weights, embedded.final_model.weights, rtol=0, atol=1e-9)

    # Stopping the services takes their SuperExec and app processes with them.
    descendants = [child for process in services if process.poll() is None
                   for child in psutil.Process(process.pid).children(recursive=True)]  # fmt: skip
    assert descendants, "the serve commands should have started Flower processes"
    for process in services:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in services:
        assert process.wait(30) in (0, 1)
    gone, alive = psutil.wait_procs(descendants, timeout=15)
    assert not alive, f"processes outlived their service: {[p.pid for p in alive]}"


def test_deploy_secagg_study_with_enrolled_identities_equals_embedded_run(
    tmp_path: Path, hub_homes: dict[str, Path], services: list[subprocess.Popen[str]]
) -> None:
    """Each hub's identity is enrolled at `flute pki issue` (from its home, or as the hex `flute hub
    identity` prints, as a remote hub would send it); coordinator and hubs get the list from the
    PKI directory, and the secure sums give the embedded secagg run's model."""
    spec = {**SPEC, "study_id": "deploy-secagg", "training": {"rounds": 2}, "pets": {"mode": "secagg"}}
    pki = tmp_path / "pki"
    _flute("pki", "init", "--dir", pki)
    remote_hex = _flute("hub", "identity", "--home", hub_homes[SITES[0]]).stdout.strip()
    _flute("pki", "issue", "--dir", pki, "--hub", SITES[0], "--secagg-key", remote_hex)
    for site in SITES[1:]:
        _flute("pki", "issue", "--dir", pki, "--hub", site, "--home", hub_homes[site])
    enrolled = json.loads((pki / "secagg-enrolment.json").read_text())["hubs"]
    assert set(enrolled) == set(SITES) and enrolled[SITES[0]] == remote_hex

    address = _serve_deployment(pki, hub_homes, tmp_path, services)
    deployed = deploy.read_study_result(_submit(spec, pki, address, tmp_path))
    embedded = _embedded(spec, hub_homes)
    assert deployed.final_model.rounds == embedded.final_model.rounds
    np.testing.assert_allclose(deployed.final_model.weights, embedded.final_model.weights, rtol=0, atol=1e-6)
