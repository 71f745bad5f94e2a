"""`flute fhir validate` and `flute fhir extract`: exit codes, the OperationOutcome, and the
one-JSON-object-per-patient line contract."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
from typer.testing import CliRunner

from flute.cli.main import app

from .ig_examples import S1, S2, ig_resources

runner = CliRunner()
VARIABLES = {"ageAtBiopsy", "pcaFamilyHistory", "typeOfBiopsy", "psa", "dre", "prostateVolume", "pirads"}


def _ndjson(path: Path, resources: list[Any]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in resources))
    return path


def test_validate_the_ig_examples_exits_0() -> None:
    result = runner.invoke(app, ["fhir", "validate", str(S1), str(S2)])
    assert result.exit_code == 0, result.output
    assert "14 records read, 14 accepted, 0 rejected" in result.output


def test_validate_bad_input_exits_1_with_an_operation_outcome(tmp_path: Path) -> None:
    psa = copy.deepcopy(ig_resources()["psa"])
    psa["valueQuantity"]["code"] = "mg/L"
    path = tmp_path / "bad.ndjson"
    path.write_bytes(orjson.dumps(psa) + b"\n{broken\n")
    result = runner.invoke(app, ["fhir", "validate", "--json", str(path)])
    assert result.exit_code == 1
    outcome = json.loads(result.stdout)
    assert outcome["resourceType"] == "OperationOutcome"
    rules = [i["details"]["coding"][0]["code"] for i in outcome["issue"]]
    assert rules == ["psa.unit", "reader.json"]
    assert outcome["issue"][0]["location"] == [f"{path}:1"] and outcome["issue"][1]["location"] == [f"{path}:2"]
    table = runner.invoke(app, ["fhir", "validate", str(path)])
    assert table.exit_code == 1 and "psa.unit" in table.stdout and "2 records read, 0 accepted, 2 rejected" in table.stdout


def test_extract_json_prints_exactly_one_contract_line_per_patient() -> None:
    result = runner.invoke(app, ["fhir", "extract", "--json", str(S1), str(S2)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(line["patient"], line["included"]) for line in lines] == [("EXP-S1-Patient", True), ("EXP-S2-Patient", False)]
    for line in lines:
        assert set(line) == {"patient", "included", "variables", "csPCa"}
        assert set(line["variables"]) == VARIABLES and line["csPCa"] is None
    assert lines[0]["variables"] == {"ageAtBiopsy": 54, "pcaFamilyHistory": 1, "typeOfBiopsy": 2, "psa": 5.0, "dre": 1, "prostateVolume": 30.0, "pirads": 3}


def test_extract_uses_only_valid_resources_reports_the_rest_on_stderr_and_exits_1(tmp_path: Path) -> None:
    ig = ig_resources()
    broken_pirads = dict(ig["pirads"], valueInteger=7)
    path = _ndjson(tmp_path / "s1.ndjson", [r for k, r in ig.items() if k not in ("pirads",)] + [broken_pirads])
    result = runner.invoke(app, ["fhir", "extract", "--json", str(path)])
    assert result.exit_code == 1
    (line,) = [json.loads(x) for x in result.stdout.splitlines()]
    assert line["variables"]["pirads"] is None and line["csPCa"] == 1  # the IG-shaped outcome says 3+4
    assert "pirads.value" in result.stderr and "rejected" in result.stderr


def test_extract_threshold_options_switch_the_inclusion_rule(tmp_path: Path) -> None:
    ig = ig_resources()
    ig["psa"]["valueQuantity"]["value"] = 3.0
    ig["dre"]["outcome"] = {"coding": [{"system": "http://snomed.info/sct", "code": "17621005"}]}
    path = _ndjson(tmp_path / "edge.ndjson", list(ig.values()))
    included = []
    for options in ([], ["--psa-comparison", ">"], ["--psa-threshold", "2.5", "--psa-comparison", ">"]):
        result = runner.invoke(app, ["fhir", "extract", "--json", *options, str(path)])
        assert result.exit_code == 0, result.output
        included.append(json.loads(result.stdout)["included"])
    assert included == [True, False, True]


def test_extract_table_and_the_installed_entry_point(tmp_path: Path) -> None:
    table = runner.invoke(app, ["fhir", "extract", str(S1)])
    assert table.exit_code == 0 and "Study variables" in table.stdout
    flute = Path(sys.executable).parent / "flute"
    done = subprocess.run([str(flute), "fhir", "extract", "--json", str(S2)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["patient"] == "EXP-S2-Patient"
    missing = subprocess.run([str(flute), "fhir", "validate", str(tmp_path / "absent.json")], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and "reader.io" in missing.stdout
