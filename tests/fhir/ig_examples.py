"""The HL7 Europe FLUTE IG example bundles (../shared/data/flute-ig-examples, relative to the
repository root), read through the readers, and builders for variants of their resources."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from flute.fhir import terminology as t
from flute.fhir.readers import iter_units

IG_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "flute-ig-examples"
S1 = IG_DIR / "EXP-S1-IncludedPatient.json"
S2 = IG_DIR / "EXP-S2-ExcludedPatient.json"

#: Short names of the IG example resources, by the suffix of their id.
_KINDS = {
    "Patient": "patient",
    "Procedure-Biopsy": "biopsy",
    "FamilyMemberHistory-PCa": "fmh",
    "Observation-PSA": "psa",
    "Procedure-DRE": "dre",
    "Observation-PV": "volume",
    "Observation-PIRADS": "pirads",
}


def ig_resources(bundle: Path = S1) -> dict[str, dict[str, Any]]:
    """The resources of one IG example bundle by short name (references already resolved),
    plus an `outcome` Observation (the IG examples carry none) for the same patient."""
    found: dict[str, dict[str, Any]] = {}
    for unit in iter_units([bundle]):
        for entry in unit.entries:
            assert entry.resource is not None, entry.error
            suffix = entry.resource["id"].split("-", 2)[2]
            found[_KINDS[suffix]] = entry.resource
    found["outcome"] = outcome_observation(found["patient"]["id"], "LA30795-1")
    return found


def outcome_observation(patient_id: str, gleason_code: str, system: str = t.LOINC, **extra: Any) -> dict[str, Any]:
    """A PR-OutcomeBCN-RC2 Observation with the given Gleason answer."""
    return {
        "resourceType": "Observation",
        "id": f"{patient_id}-outcome-{gleason_code}",
        "meta": {"profile": [f"{t.IG_CANONICAL}/StructureDefinition/PR-OutcomeBCN-RC2"]},
        "status": "final",
        "code": {"coding": [t.ISUP_GRADE.to_fhir()]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": "2024-06-20",
        "valueCodeableConcept": {"coding": [{"system": system, "code": gleason_code}]},
        **extra,
    }


def variant(resource: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A deep copy with top-level elements replaced (a value of `...` deletes the element)."""
    copied = copy.deepcopy(resource)
    for key, value in changes.items():
        if value is ...:
            copied.pop(key, None)
        else:
            copied[key] = value
    return copied
