"""FHIR inputs for the hub tests: the IG's example patients cloned under new ids (so their
shape is the IG's own), plus an outcome Observation, written as NDJSON or Bundles."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
IG_EXAMPLES = REPO_ROOT.parent / "shared" / "data" / "flute-ig-examples"
IG_INCLUDED = IG_EXAMPLES / "EXP-S1-IncludedPatient.json"
IG_EXCLUDED = IG_EXAMPLES / "EXP-S2-ExcludedPatient.json"
IG_TEARDOWN = IG_EXAMPLES / "EXP-Teardown.json"

#: LOINC answers of the IG's Gleason value set by ISUP grade group.
GLEASON_BY_ISUP = {1: "LA30794-4", 2: "LA30795-1", 3: "LA30796-9", 4: "LA30797-7", 5: "LA30798-5"}

Resource = dict[str, Any]


@cache
def _ig_resources() -> tuple[Resource, ...]:
    bundle = json.loads(IG_INCLUDED.read_text())
    return tuple(entry["resource"] for entry in bundle["entry"])


def patient_resources(patient_id: str, *, psa: float = 5.0, isup: int | None = 2, with_volume: bool = True) -> list[Resource]:
    """One IG-shaped patient (Patient, biopsy, family history, PSA, DRE, volume, PI-RADS) with
    `Patient/<id>` references, PSA `psa` ng/mL and an ISUP outcome unless `isup` is None."""
    resources = []
    for original in _ig_resources():
        resource = copy.deepcopy(original)
        suffix = original["id"].removeprefix("EXP-S1-")
        if original["resourceType"] == "Patient":
            resource["id"] = patient_id
        else:
            resource["id"] = f"{patient_id}-{suffix}"
            resource["patient" if original["resourceType"] == "FamilyMemberHistory" else "subject"] = {"reference": f"Patient/{patient_id}"}
        if suffix == "Observation-PSA":
            resource["valueQuantity"]["value"] = psa
        if suffix == "Observation-PV" and not with_volume:
            continue
        resources.append(resource)
    if isup is not None:
        resources.append(outcome_resource(patient_id, isup))
    return resources


def outcome_resource(patient_id: str, isup: int) -> Resource:
    return {
        "resourceType": "Observation",
        "id": f"{patient_id}-isup",
        "meta": {"profile": ["https://flute.com/StructureDefinition/PR-OutcomeBCN-RC2"]},
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "LL5543-5", "display": "ISUP grade"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "valueCodeableConcept": {"coding": [{"system": "http://loinc.org", "code": GLEASON_BY_ISUP[isup]}]},
    }


def find(resources: Iterable[Resource], suffix: str) -> Resource:
    return next(r for r in resources if r["id"].endswith(suffix))


def write_ndjson(path: Path, resources: Iterable[Resource | str]) -> Path:
    """One resource per line; a str is written as is (to include unreadable lines)."""
    with path.open("w", encoding="utf-8") as handle:
        for resource in resources:
            handle.write((resource if isinstance(resource, str) else json.dumps(resource)) + "\n")
    return path


def write_bundle(path: Path, resources: Iterable[Resource], bundle_type: str) -> Path:
    """A transaction (PUT entries), batch or collection Bundle of the resources."""
    entries = []
    for resource in resources:
        entry: dict[str, Any] = {"fullUrl": f"urn:test:{resource['resourceType']}/{resource['id']}", "resource": resource}
        if bundle_type in ("transaction", "batch"):
            entry["request"] = {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"}
        entries.append(entry)
    path.write_text(json.dumps({"resourceType": "Bundle", "type": bundle_type, "entry": entries}), encoding="utf-8")
    return path
