"""The scoring service as a real uvicorn process on a loopback port (F-PIL-24, F-STD-7)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import orjson
import pytest

from flute.deploy.artifact import load_verified
from flute.deploy.examples import example_bundle
from flute.deploy.keys import load_trusted_keys
from flute.deploy.scoring import score_units
from flute.fhir.readers import document_units

from .conftest import S1, S2
from .r4b import assert_valid_r4b

FHIR_JSON = "application/fhir+json"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serve(artifact: Path, trust: Path, port: int) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "flute.cli.main", "score", "serve", str(artifact), "--host", "127.0.0.1", "--port", str(port), "--trust", str(trust)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def service(artifact: Path, trust_dir: Path) -> Iterator[str]:
    port = _free_port()
    process = _serve(artifact, trust_dir, port)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            if process.poll() is not None:
                raise AssertionError(f"the service exited early: {process.stderr.read() if process.stderr else ''}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the service did not answer /health within 60 s")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _post(url: str, body: bytes) -> httpx.Response:
    return httpx.post(f"{url}/score", content=body, headers={"Content-Type": FHIR_JSON}, timeout=60)


def test_health_and_model_summary(service: str) -> None:
    assert httpx.get(f"{service}/health").json() == {"status": "ok", "model_id": "cspca-test", "version": "1.2.0"}
    summary = httpx.get(f"{service}/model").json()
    assert summary["decision_threshold"] == 0.15 and summary["model_type"] == "logistic_regression"
    assert summary["provenance"]["hubs"] == ["hub-a", "hub-b", "hub-c"] and summary["validation"]["auroc"] == 0.81


def test_openapi_documents_the_score_operation(service: str) -> None:
    spec = httpx.get(f"{service}/openapi.json").json()
    operation = spec["paths"]["/score"]["post"]
    assert FHIR_JSON in operation["requestBody"]["content"]
    assert {"200", "400", "422"} <= set(operation["responses"])
    assert {"/health", "/model"} <= set(spec["paths"])


def test_single_patient_scores_like_the_in_process_model(service: str, artifact: Path, trust_dir: Path) -> None:
    response = _post(service, S1.read_bytes())
    assert response.status_code == 200 and response.headers["content-type"] == FHIR_JSON
    bundle = response.json()
    assert_valid_r4b(bundle)
    local = score_units(document_units(S1.read_bytes(), "local"), load_verified(artifact, load_trusted_keys(trust_dir)))
    assert bundle["entry"][0]["resource"]["prediction"][0]["probabilityDecimal"] == local.predictions[0].probability


def test_batch_of_patients(service: str) -> None:
    response = _post(service, orjson.dumps(example_bundle(120, seed=9)))
    assert response.status_code == 200
    entries = response.json()["entry"]
    assert len(entries) == 120 and len({e["resource"]["subject"]["reference"] for e in entries}) == 120


def test_unreadable_body_is_400_with_an_operation_outcome(service: str) -> None:
    response = _post(service, b'{"resourceType": "Bundle", "entry": [')
    assert response.status_code == 400 and response.headers["content-type"] == FHIR_JSON
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert [i["details"]["coding"][0]["code"] for i in outcome["issue"]] == ["reader.json"]


def test_problematic_patients_are_422_with_every_problem(service: str) -> None:
    bundle = json.loads(S2.read_text())
    response = _post(service, orjson.dumps(bundle))
    assert response.status_code == 422
    assert [i["details"]["coding"][0]["code"] for i in response.json()["issue"]] == ["score.ineligible"]


def test_service_refuses_to_start_on_a_tampered_artifact(artifact: Path, trust_dir: Path, tmp_path: Path) -> None:
    tampered = Path(shutil.copytree(artifact, tmp_path / "tampered"))
    (tampered / "model-card.md").write_text("# anything\n")
    process = _serve(tampered, trust_dir, _free_port())
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "REFUSED (TamperedArtifact)" in stderr and "model-card.md" in stderr
