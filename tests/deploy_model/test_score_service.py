"""The scoring service as a real uvicorn process on a loopback port (F-PIL-24, F-STD-7)."""

from __future__ import annotations

import json
import shutil
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
from .service_process import free_port, running_service, start_service

FHIR_JSON = "application/fhir+json"


@pytest.fixture(scope="module")
def service(artifact: Path, trust_dir: Path) -> Iterator[str]:
    with running_service(artifact, trust_dir) as url:
        yield url


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
    process = start_service(tampered, trust_dir, free_port())
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "REFUSED (TamperedArtifact)" in stderr and "model-card.md" in stderr
