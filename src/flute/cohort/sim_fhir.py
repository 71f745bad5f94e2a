"""FHIR R4 resources for a simulated patient, shaped like the IG's example Bundles.

Each resource has a builder from plain values (`*_json`), shared with the tabular import
(flute.cohort.tabular), so a table row and a simulated patient become the same FHIR; the
`*_resource` functions apply a simulated patient's presentation to them.

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
#: The ISUP grade groups `outcome_json` can write.
ISUP_GRADES: Final[frozenset[int]] = frozenset(_GLEASON_BY_ISUP)
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


def _dated(element: str, when: date | None) -> JsonObject:
    """`element` with the day, or nothing when the day is not known."""
    return {} if when is None else {element: when.isoformat()}


def performed_json(when: date | None, age: int | None) -> JsonObject:
    """performedDateTime when the day is known, else performedAge in UCUM `a` as in the IG
    examples, else nothing (the validator then says the biopsy needs one of them)."""
    if when is not None:
        return {"performedDateTime": when.isoformat()}
    if age is not None:
        return {"performedAge": {"value": age, "unit": "a", "system": t.UCUM, "code": "a"}}
    return {}


def _performed(p: SimulatedPatient, when: date) -> JsonObject:
    """A date when the site records birth dates, else the age."""
    return performed_json(when, None) if p.presentation.dated else performed_json(None, p.age)


def patient_json(patient_id: str, birth_date: date | None) -> JsonObject:
    return {"resourceType": "Patient", "id": patient_id, "active": True, "gender": "male", **_dated("birthDate", birth_date)}


def patient_resource(p: SimulatedPatient) -> JsonObject:
    return patient_json(p.id, p.birth_date if p.presentation.dated else None)


def biopsy_json(patient_id: str, repeated: bool, performed: JsonObject) -> JsonObject:
    return {
        "resourceType": "Procedure",
        "id": f"{patient_id}-biopsy",
        "meta": _meta("PR-Biopsy"),
        "status": "completed",
        "category": _concept(t.BIOPSY_REPEATED if repeated else t.BIOPSY_INITIAL),
        "code": _concept(t.BIOPSY),
        "subject": _subject(patient_id),
        **performed,
        "bodySite": [_concept(t.PROSTATE_STRUCTURE)],
    }


def biopsy_resource(p: SimulatedPatient) -> JsonObject:
    return biopsy_json(p.id, bool(p.repeat_biopsy), _performed(p, p.biopsy_date))


def family_history_resource(p: SimulatedPatient) -> JsonObject:
    return family_history_json(p.id, p.mri_date, p.presentation.family_condition, p.presentation.family_relationship)


def family_history_json(patient_id: str, when: date | None, condition: tuple[str, str], relationship: tuple[str, str]) -> JsonObject:
    """A positive prostate cancer family history: SNOMED CT (code, display) `condition` of a
    v3-RoleCode (code, display) `relationship`."""
    (condition_code, condition_display), (relation_code, relation_display) = condition, relationship
    return {
        "resourceType": "FamilyMemberHistory",
        "id": f"{patient_id}-family-history",
        "meta": _meta("PR-ProstateCancerFamilyHistory"),
        "status": "completed",
        "patient": _subject(patient_id),
        **_dated("date", when),
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
    return psa_json(p.id, resource_id, value, unit, result.when, status)


def psa_json(patient_id: str, resource_id: str, value: float, unit: str, when: date | None, status: str = "final") -> JsonObject:
    """A PSA result as sent: `value` in `unit` (harmonised later, by the hub's extraction)."""
    return {
        "resourceType": "Observation",
        "id": resource_id,
        "meta": _meta("PR-ProstateSpecificAntigen"),
        "status": status,
        "code": _concept(t.PSA),
        "subject": _subject(patient_id),
        **_dated("effectiveDateTime", when),
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
    return dre_json(p.id, outcome, _performed(p, p.psa_date))


def dre_json(patient_id: str, outcome: t.Coding, performed: JsonObject) -> JsonObject:
    return {
        "resourceType": "Procedure",
        "id": f"{patient_id}-dre",
        "meta": _meta("PR-DigitalRectalExamination"),
        "status": "completed",
        "code": _concept(t.DRE),
        "subject": _subject(patient_id),
        **performed,
        "bodySite": [_concept(t.PROSTATE_STRUCTURE)],
        "outcome": _concept(outcome),
    }


def dangling_patient_id(p: SimulatedPatient) -> str:
    """The id a dangling reference points at: a Patient that is never written."""
    return f"{p.id}-unknown"


def volume_resource(p: SimulatedPatient) -> JsonObject:
    subject = dangling_patient_id(p) if p.presentation.invalid is InvalidKind.DANGLING_SUBJECT else p.id
    return volume_json(p.id, p.volume, p.presentation.volume_unit, p.mri_date, subject)


def volume_json(patient_id: str, value: float, unit: str, when: date | None, subject_id: str | None = None) -> JsonObject:
    """A prostate volume of `patient_id`, about `subject_id` (default: that patient)."""
    return {
        "resourceType": "Observation",
        "id": f"{patient_id}-volume",
        "meta": _meta("PR-ProstateVolume"),
        "status": "final",
        "code": _concept(t.PROSTATE_VOLUME),
        "subject": _subject(subject_id or patient_id),
        **_dated("effectiveDateTime", when),
        "valueQuantity": _quantity(value, unit),
        "bodySite": _concept(t.PROSTATE_STRUCTURE),
    }


def pirads_resource(p: SimulatedPatient) -> JsonObject:
    invalid = p.presentation.invalid is InvalidKind.PIRADS_OUT_OF_RANGE
    return pirads_json(p.id, PIRADS_OUT_OF_RANGE_VALUE if invalid else p.pirads, p.mri_date)


def pirads_json(patient_id: str, score: int, when: date | None) -> JsonObject:
    """A PI-RADS score as sent (the validator checks its range)."""
    return {
        "resourceType": "Observation",
        "id": f"{patient_id}-pirads",
        "meta": _meta("PR-PIRADSScore"),
        "status": "final",
        "code": _concept(t.MPMRI_PROSTATE),
        "subject": _subject(patient_id),
        **_dated("effectiveDateTime", when),
        "valueInteger": score,
    }


def outcome_resource(p: SimulatedPatient) -> JsonObject:
    return outcome_json(p.id, p.isup, p.biopsy_date)


def outcome_json(patient_id: str, isup: int, when: date | None) -> JsonObject:
    """The biopsy outcome: ISUP grade group `isup` (0..5, see ISUP_GRADES) as its Gleason answer."""
    return {
        "resourceType": "Observation",
        "id": f"{patient_id}-isup",
        "meta": _meta("PR-OutcomeBCN-RC2"),
        "status": "final",
        "code": _concept(t.ISUP_GRADE),
        "subject": _subject(patient_id),
        **_dated("effectiveDateTime", when),
        "valueCodeableConcept": _concept(_GLEASON_BY_ISUP[isup]),
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
