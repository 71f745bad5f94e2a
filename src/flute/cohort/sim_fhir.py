"""FHIR R4 resources for a simulated patient, shaped like the IG's example Bundles.

Same profiles in meta.profile (the IG examples' https://flute.com/StructureDefinition/ base),
same codes and systems (taken from flute.fhir.terminology, so the writer and the validator can
never disagree on a code), same element shapes (performedAge in UCUM `a`, valueQuantity with a
UCUM code, valueInteger PI-RADS, FamilyMemberHistory.patient). References are `Patient/<id>`
rather than urn:uuid, because a batch Bundle or an NDJSON file does not resolve urn:uuid
references across entries the way a transaction does.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Final

from flute.cohort.sim_patients import InvalidKind, PsaResult, SimulatedPatient
from flute.fhir import terminology as t

JsonObject = dict[str, Any]

#: Resource types the simulator writes, in the order a patient's resources are written.
RESOURCE_TYPES: Final[tuple[str, ...]] = ("Patient", "Procedure", "FamilyMemberHistory", "Observation")

_PROFILE_BASE: Final = f"{t.IG_LEGACY_CANONICAL}/StructureDefinition/"
_GLEASON_BY_ISUP: Final[dict[int, t.Coding]] = {grade: coding for coding, grade in t.GLEASON_ISUP.items()}
#: Written instead of DRE_NORMAL/DRE_SUSPICIOUS for InvalidKind.UNKNOWN_CODE: a real SNOMED CT
#: code a hospital might send, but outside the IG's required DRE outcome value set.
DRE_OUTCOME_OUTSIDE_VALUE_SET: Final = t.Coding(t.SNOMED, "263654008", "Abnormal")
#: Written for InvalidKind.PSA_BAD_UNIT: a UCUM unit with no mass-concentration conversion.
PSA_UNIT_OUTSIDE_TABLE: Final = "mmol/L"
#: Written for InvalidKind.PIRADS_OUT_OF_RANGE.
PIRADS_OUT_OF_RANGE_VALUE: Final = 7
_PSA_FACTOR: Final[dict[str, float]] = {"ng/mL": 1.0, "ug/L": 1.0, "ng/dL": 100.0}


def _meta(profile: str) -> JsonObject:
    return {"profile": [_PROFILE_BASE + profile]}


def _concept(coding: t.Coding) -> JsonObject:
    return {"coding": [coding.to_fhir()]}


def _quantity(value: float | int, unit: str) -> JsonObject:
    return {"value": value, "unit": unit, "system": t.UCUM, "code": unit}


def _subject(patient_id: str) -> JsonObject:
    return {"reference": f"Patient/{patient_id}"}


def _performed(p: SimulatedPatient, when: date) -> JsonObject:
    """performedAge as in the IG examples, or a date when the site records birth dates."""
    if p.presentation.dated:
        return {"performedDateTime": when.isoformat()}
    return {"performedAge": {"value": p.age, "unit": "a", "system": t.UCUM, "code": "a"}}


def patient_resource(p: SimulatedPatient) -> JsonObject:
    resource: JsonObject = {"resourceType": "Patient", "id": p.id, "active": True, "gender": "male"}
    if p.presentation.dated:
        resource["birthDate"] = p.birth_date.isoformat()
    return resource


def biopsy_resource(p: SimulatedPatient) -> JsonObject:
    return {
        "resourceType": "Procedure",
        "id": f"{p.id}-biopsy",
        "meta": _meta("PR-Biopsy"),
        "status": "completed",
        "category": _concept(t.BIOPSY_REPEATED if p.repeat_biopsy else t.BIOPSY_INITIAL),
        "code": _concept(t.BIOPSY),
        "subject": _subject(p.id),
        **_performed(p, p.biopsy_date),
        "bodySite": [_concept(t.PROSTATE_STRUCTURE)],
    }


def family_history_resource(p: SimulatedPatient) -> JsonObject:
    (condition_code, condition_display), (relation_code, relation_display) = (
        p.presentation.family_condition,
        p.presentation.family_relationship,
    )
    return {
        "resourceType": "FamilyMemberHistory",
        "id": f"{p.id}-family-history",
        "meta": _meta("PR-ProstateCancerFamilyHistory"),
        "status": "completed",
        "patient": _subject(p.id),
        "date": p.mri_date.isoformat(),
        "relationship": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": relation_code, "display": relation_display}
            ]
        },
        "sex": {"coding": [{"system": "http://hl7.org/fhir/administrative-gender", "code": "male", "display": "Male"}]},
        "condition": [{"code": {"coding": [{"system": t.SNOMED, "code": condition_code, "display": condition_display}]}}],
    }


def psa_resource(p: SimulatedPatient, result: PsaResult, resource_id: str, status: str = "final") -> JsonObject:
    unit = p.presentation.psa_unit
    value = round(result.value_ng_per_ml * _PSA_FACTOR[unit], 1)
    if p.presentation.invalid is InvalidKind.PSA_BAD_UNIT:
        unit = PSA_UNIT_OUTSIDE_TABLE
    return {
        "resourceType": "Observation",
        "id": resource_id,
        "meta": _meta("PR-ProstateSpecificAntigen"),
        "status": status,
        "code": _concept(t.PSA),
        "subject": _subject(p.id),
        "effectiveDateTime": result.when.isoformat(),
        "valueQuantity": _quantity(value, unit),
        "bodySite": _concept(t.PROSTATE_STRUCTURE),
    }


def psa_resources(p: SimulatedPatient) -> list[JsonObject]:
    """Earlier results first, then the result used for the study, then any void (entered-in-error) one."""
    resources = [psa_resource(p, result, f"{p.id}-psa-{k + 1}") for k, result in enumerate(reversed(p.presentation.earlier_psa))]
    resources.append(psa_resource(p, PsaResult(p.psa, p.psa_date), f"{p.id}-psa"))
    if p.presentation.entered_in_error_psa is not None:
        resources.append(psa_resource(p, p.presentation.entered_in_error_psa, f"{p.id}-psa-void", status="entered-in-error"))
    return resources


def dre_resource(p: SimulatedPatient) -> JsonObject:
    if p.presentation.invalid is InvalidKind.UNKNOWN_CODE:
        outcome = DRE_OUTCOME_OUTSIDE_VALUE_SET
    else:
        outcome = t.DRE_SUSPICIOUS if p.dre else t.DRE_NORMAL
    return {
        "resourceType": "Procedure",
        "id": f"{p.id}-dre",
        "meta": _meta("PR-DigitalRectalExamination"),
        "status": "completed",
        "code": _concept(t.DRE),
        "subject": _subject(p.id),
        **_performed(p, p.psa_date),
        "bodySite": [_concept(t.PROSTATE_STRUCTURE)],
        "outcome": _concept(outcome),
    }


def dangling_patient_id(p: SimulatedPatient) -> str:
    """The id a dangling reference points at: a Patient that is never written."""
    return f"{p.id}-unknown"


def volume_resource(p: SimulatedPatient) -> JsonObject:
    subject = dangling_patient_id(p) if p.presentation.invalid is InvalidKind.DANGLING_SUBJECT else p.id
    return {
        "resourceType": "Observation",
        "id": f"{p.id}-volume",
        "meta": _meta("PR-ProstateVolume"),
        "status": "final",
        "code": _concept(t.PROSTATE_VOLUME),
        "subject": _subject(subject),
        "effectiveDateTime": p.mri_date.isoformat(),
        "valueQuantity": _quantity(p.volume, p.presentation.volume_unit),
        "bodySite": _concept(t.PROSTATE_STRUCTURE),
    }


def pirads_resource(p: SimulatedPatient) -> JsonObject:
    invalid = p.presentation.invalid is InvalidKind.PIRADS_OUT_OF_RANGE
    return {
        "resourceType": "Observation",
        "id": f"{p.id}-pirads",
        "meta": _meta("PR-PIRADSScore"),
        "status": "final",
        "code": _concept(t.MPMRI_PROSTATE),
        "subject": _subject(p.id),
        "effectiveDateTime": p.mri_date.isoformat(),
        "valueInteger": PIRADS_OUT_OF_RANGE_VALUE if invalid else p.pirads,
    }


def outcome_resource(p: SimulatedPatient) -> JsonObject:
    return {
        "resourceType": "Observation",
        "id": f"{p.id}-isup",
        "meta": _meta("PR-OutcomeBCN-RC2"),
        "status": "final",
        "code": _concept(t.ISUP_GRADE),
        "subject": _subject(p.id),
        "effectiveDateTime": p.biopsy_date.isoformat(),
        "valueCodeableConcept": _concept(_GLEASON_BY_ISUP[p.isup]),
    }


def patient_resources(p: SimulatedPatient) -> list[JsonObject]:
    """All resources of one patient, in the IG examples' order, plus the outcome when labelled."""
    presentation = p.presentation
    resources = [patient_resource(p), biopsy_resource(p)]
    if p.family_history:
        resources.append(family_history_resource(p))
    resources.extend(psa_resources(p))
    if presentation.dre_recorded:
        resources.append(dre_resource(p))
    if presentation.volume_recorded:
        resources.append(volume_resource(p))
    resources.append(pirads_resource(p))
    if presentation.labelled:
        resources.append(outcome_resource(p))
    return resources


def invalid_resource_key(p: SimulatedPatient, kind: InvalidKind) -> str:
    """`Type/id` of the resource written invalid for `kind`."""
    return {
        InvalidKind.PSA_BAD_UNIT: f"Observation/{p.id}-psa",
        InvalidKind.PIRADS_OUT_OF_RANGE: f"Observation/{p.id}-pirads",
        InvalidKind.UNKNOWN_CODE: f"Procedure/{p.id}-dre",
        InvalidKind.DANGLING_SUBJECT: f"Observation/{p.id}-volume",
    }[kind]
