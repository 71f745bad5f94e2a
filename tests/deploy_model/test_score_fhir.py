"""Scoring FHIR input (F-STD-7, F-PIL-24): the IG example gives a valid RiskAssessment that
references its inputs; every problem comes back as an OperationOutcome with its rule id."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from typer.testing import CliRunner

from flute.cli.main import app
from flute.cohort.variables import VARIABLE_NAMES
from flute.deploy.artifact import ScoringModel, load_verified
from flute.deploy.examples import example_bundle
from flute.deploy.keys import KeyPairFiles, load_trusted_keys
from flute.deploy.scoring import assessments_bundle, score_units
from flute.fhir.extract import extract_all
from flute.fhir.readers import document_units, iter_units

from .conftest import S1, S2, Trained, make_artifact, resign_manifest
from .r4b import assert_valid_r4b

#: The IG's documented study variables of S1 (flute-ig-examples/README.md), in VARIABLE_NAMES order.
S1_ROW = np.array([[54, 1, 2, 5.0, 1, 30.0, 3]], dtype=np.float64)


def _cli_score(paths: list[Path], artifact: Path, trust: Path) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(app, ["score", "run", "--model", str(artifact), "--trust", str(trust), *map(str, paths)])
    return result.exit_code, json.loads(result.stdout)


def _rules(outcome: dict[str, Any]) -> list[str]:
    assert outcome["resourceType"] == "OperationOutcome"
    return [issue["details"]["coding"][0]["code"] for issue in outcome["issue"] if issue["severity"] in ("error", "fatal")]


def _write(tmp_path: Path, name: str, bundle: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(bundle))
    return path


def _s1_without(suffix: str) -> dict[str, Any]:
    bundle = json.loads(S1.read_text())
    bundle["entry"] = [e for e in bundle["entry"] if not e["resource"]["id"].endswith(suffix)]
    return bundle


def test_ig_example_s1_gives_a_valid_risk_assessment_on_its_inputs(artifact: Path, trust_dir: Path, trained: Trained) -> None:
    code, bundle = _cli_score([S1], artifact, trust_dir)
    assert code == 0
    assert_valid_r4b(bundle)
    assert bundle["type"] == "collection" and len(bundle["entry"]) == 1
    assessment = bundle["entry"][0]["resource"]
    assert assessment["status"] == "final" and assessment["subject"] == {"reference": "Patient/EXP-S1-Patient"}
    inputs = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in json.loads(S1.read_text())["entry"]}
    assert {b["reference"] for b in assessment["basis"]} == inputs - {"Patient/EXP-S1-Patient"}
    assert assessment["method"]["coding"][0] == {"system": "urn:flute:model", "code": "cspca-test", "version": "1.2.0", "display": "csPCa risk before prostate biopsy"}
    prediction = assessment["prediction"][0]
    assert prediction["outcome"]["coding"][0]["code"] == "399068003"
    expected = float(trained.expected(S1_ROW)[0])
    assert abs(prediction["probabilityDecimal"] - expected) < 1e-12
    high = expected >= 0.15
    assert prediction["qualitativeRisk"]["coding"][0]["code"] == ("high" if high else "low")
    assert assessment["mitigation"] == ("Biopsy recommended" if high else "Biopsy may be avoided")


def test_patient_outside_the_intended_population_is_not_scored(artifact: Path, trust_dir: Path) -> None:
    code, outcome = _cli_score([S2], artifact, trust_dir)
    assert code == 1 and _rules(outcome) == ["score.ineligible"]
    assert "EXP-S2-Patient" in outcome["issue"][0]["diagnostics"]


def test_malformed_input_lists_every_problem_and_scores_nothing(artifact: Path, trust_dir: Path, tmp_path: Path) -> None:
    bundle = json.loads(S1.read_text())
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["id"] == "EXP-S1-Observation-PSA":
            resource["valueQuantity"].update(unit="mmol/L", code="mmol/L")
        if resource["id"] == "EXP-S1-Observation-PIRADS":
            resource["valueInteger"] = 7
    broken = _write(tmp_path, "broken.json", bundle)
    not_json = tmp_path / "not-json.json"
    not_json.write_text('{"resourceType": "Bundle", ')
    code, outcome = _cli_score([broken, not_json], artifact, trust_dir)
    assert code == 1
    assert sorted(_rules(outcome)) == ["pirads.value", "psa.unit", "reader.json", "transaction.rejected"]


def test_missing_variable_is_refused_unless_imputation_is_allowed(
    artifact: Path, trust_dir: Path, trained: Trained, publisher: KeyPairFiles, tmp_path: Path
) -> None:
    without_volume = _write(tmp_path, "no-volume.json", _s1_without("Observation-PV"))
    code, outcome = _cli_score([without_volume], artifact, trust_dir)
    assert code == 1 and _rules(outcome) == ["score.missing"]
    assert "prostateVolume" in outcome["issue"][0]["diagnostics"]
    imputing = make_artifact(trained, publisher, tmp_path / "imputing", allow_imputation=True)
    code, bundle = _cli_score([without_volume], imputing, trust_dir)
    assert code == 0
    row = S1_ROW.copy()
    row[0, VARIABLE_NAMES.index("prostateVolume")] = np.nan
    assert abs(bundle["entry"][0]["resource"]["prediction"][0]["probabilityDecimal"] - trained.expected(row)[0]) < 1e-12


def test_values_outside_the_manifest_range_are_refused(artifact_copy: Path, trust_dir: Path, publisher: KeyPairFiles) -> None:
    def narrow_psa(document: dict[str, Any]) -> None:
        document["features"][VARIABLE_NAMES.index("psa")]["maximum"] = 4.0

    resign_manifest(artifact_copy, narrow_psa, publisher)
    code, outcome = _cli_score([S1], artifact_copy, trust_dir)
    assert code == 1 and _rules(outcome) == ["score.range"]
    assert "psa = 5 is above the model's range" in outcome["issue"][0]["diagnostics"]


def test_a_value_without_logarithm_is_refused_not_crashed(artifact: Path, trust_dir: Path, tmp_path: Path) -> None:
    bundle = json.loads(S1.read_text())
    for entry in bundle["entry"]:
        if entry["resource"]["id"] == "EXP-S1-Observation-PSA":
            entry["resource"]["valueQuantity"]["value"] = 0.0  # valid FHIR; still included by the suspicious DRE
    code, outcome = _cli_score([_write(tmp_path, "psa0.json", bundle)], artifact, trust_dir)
    assert code == 1 and _rules(outcome) == ["score.range"]
    assert "psa = 0 has no logarithm" in outcome["issue"][0]["diagnostics"]


def test_input_without_a_patient_is_refused(artifact: Path, trust_dir: Path, tmp_path: Path) -> None:
    empty = _write(tmp_path, "empty.json", {"resourceType": "Bundle", "type": "collection", "entry": []})
    code, outcome = _cli_score([empty], artifact, trust_dir)
    assert code == 1 and _rules(outcome) == ["score.no-patient"]


def test_batch_scores_every_patient_like_the_in_memory_model(artifact: Path, trust_dir: Path, trained: Trained) -> None:
    model: ScoringModel = load_verified(artifact, load_trusted_keys(trust_dir))
    data = orjson.dumps(example_bundle(40, seed=3))
    report = score_units(document_units(data, "batch"), model)
    assert not report.failed and len(report.predictions) == 40
    rows, _ = extract_all([e.resource for u in document_units(data, "batch") for e in u.entries if e.resource])
    features = np.array([[float(r.variables[n]) for n in VARIABLE_NAMES] for r in rows])  # type: ignore[arg-type]
    np.testing.assert_allclose([p.probability for p in report.predictions], trained.expected(features), rtol=0, atol=1e-12)
    assert [p.patient_id for p in report.predictions] == [r.patient for r in rows]
    bundle = assessments_bundle(report, model)
    assert len({e["fullUrl"] for e in bundle["entry"]}) == 40
    assert_valid_r4b(bundle)


def test_scoring_reads_through_the_hubs_pipeline(artifact: Path, trust_dir: Path) -> None:
    """Same readers (fullUrl references resolved), same validation, same extraction as a hub."""
    model = load_verified(artifact, load_trusted_keys(trust_dir))
    via_files = score_units(iter_units([S1]), model)
    via_bytes = score_units(document_units(S1.read_bytes(), "request"), model)
    assert via_files.predictions[0].probability == via_bytes.predictions[0].probability
    assert via_files.predictions[0].basis == via_bytes.predictions[0].basis
    reordered = copy.deepcopy(json.loads(S1.read_text()))
    reordered["entry"].reverse()
    via_reordered = score_units(document_units(orjson.dumps(reordered), "request"), model)
    assert via_reordered.predictions[0].probability == via_files.predictions[0].probability
