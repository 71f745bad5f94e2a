"""Study variables per patient, following the IG's ResearchVariables and PcaInclusionCriteria
CQL libraries (F-PIL-27..32, F-PIL-1..4, F-PIL-9), made explicit for real-world data.

Which records count:
- `entered-in-error` and `cancelled` records are ignored; Observations count when they are
  final results (`final`, or its revisions `amended` / `corrected`), Procedures and
  FamilyMemberHistory when `completed`. Every record left out says why (Issue
  `extract.ignored`, information).
- A record whose subject is another patient is left out (`extract.other-patient`).

The index biopsy: the latest completed PR-Biopsy, by performed date (performedDateTime or
performedPeriod.start), else by performedAge, else the last one read (`extract.biopsies`
notes when there were several). It gives typeOfBiopsy (category 884001 -> 0, 27582007 -> 2),
the age and the cut-off date for measurements.

Variables:
- ageAtBiopsy: the index biopsy's performedAge in completed years; else from Patient.birthDate
  and the biopsy date (both full dates); else missing.
- psa, prostateVolume, pirads: the latest final result on or before the biopsy date by
  effective date (effectiveDateTime, effectiveInstant or effectivePeriod.start). Results
  dated after the biopsy are not used (`extract.after-biopsy`). When dates cannot be compared
  (no biopsy date, or undated results) the latest dated result, else the last one read.
  Quantities are harmonised to ng/mL and mL and rounded to one decimal (units.py).
- dre: 1 if any completed DRE has the suspicious outcome 131196009, 0 if completed DREs are
  all normal (17621005); missing when there is no completed DRE. (The CQL answers 0 for "no
  DRE"; FLUTE keeps "not examined" apart from "normal" so it is not imputed as normal.)
- pcaFamilyHistory: 1 if a completed FamilyMemberHistory has any condition code in VS-PCa,
  else 0, also when no family history is recorded: the IG's rule (its CQL reads condition[0]
  only; FLUTE reads every condition).
- typeOfBiopsy: missing when there is no completed biopsy (the CQL's 0 would claim an initial
  biopsy that never happened).
- Outcome: the latest final PR-OutcomeBCN-RC2 result, Gleason answer -> ISUP grade group
  (terminology.GLEASON_ISUP, incl. SNOMED 260415000 "Not detected" -> 0); none -> unlabelled.

Inclusion (PcaInclusionCriteria): any final PSA meeting the threshold OR any completed DRE
with the suspicious outcome. The IG's executable rule is PSA >= 3 ng/mL; the protocol prose
says > 3.0, so both threshold and comparison are configuration (InclusionRule).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any, Generic, Iterable, Literal, NamedTuple, TypeVar

from flute.cohort.variables import AGE, BIOPSY_TYPE, DRE, FAMILY_HISTORY, PIRADS, PROSTATE_VOLUME, PSA, StudyRow
from flute.fhir import profiles as p
from flute.fhir import terminology as t
from flute.fhir.issues import Issue, Severity
from flute.fhir.references import SUBJECT_ELEMENT, resource_key, subject_id
from flute.fhir.units import AGE_UNITS, PSA_UNITS, VOLUME_UNITS, UnitTable, is_number, quantity_unit
from flute.fhir.validate import matched_profiles

__all__ = ["InclusionRule", "extract_patient", "extract_all", "group_by_patient", "subject_id"]

V = TypeVar("V")


@dataclass(frozen=True)
class InclusionRule:
    """Cohort inclusion by PSA (F-PIL-2). Default: the IG's CQL rule, PSA >= 3.0 ng/mL."""

    psa_threshold: float = 3.0
    comparison: Literal[">=", ">"] = ">="

    def __post_init__(self) -> None:
        if self.comparison not in (">=", ">"):
            raise ValueError(f"InclusionRule.comparison must be '>=' or '>', got {self.comparison!r}")
        if not math.isfinite(self.psa_threshold) or self.psa_threshold < 0:
            raise ValueError(f"InclusionRule.psa_threshold must be a non-negative number, got {self.psa_threshold!r}")

    def psa_meets(self, psa: float) -> bool:
        return psa >= self.psa_threshold if self.comparison == ">=" else psa > self.psa_threshold


class _Reading(NamedTuple, Generic[V]):
    """One usable value with what orders it: its date (None = not comparable) and read order.
    (Named tuples, here and in _Stamp: one of each per record, and they are built several
    times faster than frozen dataclasses.)"""

    value: V
    when: date | None
    order: int
    source: str


class _Stamp(NamedTuple):
    """Where and when a record was made, before its value is known to be usable."""

    when: date | None
    order: int
    source: str

    def reading(self, value: V) -> _Reading[V]:
        return _Reading(value, self.when, self.order, self.source)


def group_by_patient(resources: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Resources by the id of the Patient they are about (a Patient under its own id), in
    input order; resources about no Patient are not grouped (validation reports them)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for resource in resources:
        patient = subject_id(resource) if isinstance(resource, dict) else None
        if patient is not None:
            groups.setdefault(patient, []).append(resource)
    return groups


def extract_all(resources: Iterable[dict[str, Any]], rule: InclusionRule = InclusionRule()) -> tuple[list[StudyRow], list[Issue]]:
    """One row per Patient among `resources` (input order), and every issue met. Resources
    about a patient that is not among them are reported (`extract.no-patient`)."""
    groups = group_by_patient(resources)
    rows: list[StudyRow] = []
    issues: list[Issue] = []
    for patient_id, group in groups.items():
        patient = next((r for r in group if r.get("resourceType") == "Patient"), None)
        if patient is None:
            for resource in group:
                issues.append(_issue(Severity.WARNING, "extract.no-patient", resource, f"is about Patient/{patient_id}, which is not in this input; it is not extracted", "not-found"))
            continue
        row, found = extract_patient(patient, group, rule)
        rows.append(row)
        issues.extend(found)
    return rows, issues


def extract_patient(
    patient: dict[str, Any], resources: Iterable[dict[str, Any]], rule: InclusionRule = InclusionRule()
) -> tuple[StudyRow, list[Issue]]:
    """The study row of one patient from the resources about them (see the module doc for
    every choice). Never raises; what cannot be used is reported as an Issue."""
    issues: list[Issue] = []
    patient_id = patient.get("id") if isinstance(patient, dict) else None
    if not isinstance(patient_id, str):
        issues.append(Issue(Severity.ERROR, "extract.patient", "the Patient has no id, so its resources cannot be linked; give it an id (rule extract.patient)", "Patient", None, "Patient.id", code="required"))
        patient_id = ""
    records = _Records(patient_id, issues)
    for order, resource in enumerate(resources):
        records.add(resource, order)
    biopsy = records.index_biopsy()
    cutoff = biopsy.when if biopsy is not None else None
    psa = _latest(records.psa, cutoff, issues)
    volume = _latest(records.volume, cutoff, issues)
    pirads = _latest(records.pirads, cutoff, issues)
    outcome = _latest(records.outcome, None, issues)
    variables = {
        AGE: _age(biopsy, patient if isinstance(patient, dict) else {}),
        FAMILY_HISTORY: int(any(r.value for r in records.family_history)),
        BIOPSY_TYPE: biopsy.value.biopsy_type if biopsy is not None else None,
        PSA: psa.value if psa else None,
        DRE: max((r.value for r in records.dre), default=None),
        PROSTATE_VOLUME: volume.value if volume else None,
        PIRADS: pirads.value if pirads else None,
    }
    included = any(rule.psa_meets(r.value) for r in records.psa) or any(r.value == 1 for r in records.dre)
    used = [r for r in (biopsy, psa, volume, pirads, outcome) if r is not None] + records.dre + [r for r in records.family_history if r.value]
    row = StudyRow(
        patient=patient_id,
        included=included,
        variables=variables,
        isup=outcome.value if outcome else None,
        biopsy_date=cutoff,
        source_resources=tuple(dict.fromkeys(r.source for r in used)),
    )
    return row, issues


@dataclass(frozen=True)
class _Biopsy:
    biopsy_type: int | None
    age: int | None


class _Records:
    """The usable readings of one patient, sorted by what they measure."""

    def __init__(self, patient_id: str, issues: list[Issue]) -> None:
        self.patient_id = patient_id
        self.issues = issues
        self.biopsies: list[_Reading[_Biopsy]] = []
        self.psa: list[_Reading[float]] = []
        self.volume: list[_Reading[float]] = []
        self.pirads: list[_Reading[int]] = []
        self.outcome: list[_Reading[int]] = []
        self.dre: list[_Reading[int]] = []
        self.family_history: list[_Reading[bool]] = []

    def add(self, resource: dict[str, Any], order: int) -> None:
        resource_type = resource.get("resourceType") if isinstance(resource, dict) else None
        if not isinstance(resource_type, str) or resource_type not in SUBJECT_ELEMENT:
            return  # the Patient itself, and types the study does not read
        if subject_id(resource) != self.patient_id:
            self.issues.append(_issue(Severity.WARNING, "extract.other-patient", resource, f"is not about Patient/{self.patient_id}; it is left out of that patient's row", "invalid"))
            return
        status = resource.get("status")
        status = status if isinstance(status, str) else None
        keys = matched_profiles(resource)
        source = resource_key(resource)
        if resource["resourceType"] == "Observation":
            if status not in t.FINAL_RESULT_STATUS:
                self._ignored(resource, status, "final results (final, amended, corrected)")
                return
            when = _day(resource.get("effectiveDateTime") or resource.get("effectiveInstant") or _get(resource, "effectivePeriod", "start"))
            for key in keys:
                self._observation(key, resource, _Stamp(when, order, source))
        elif resource["resourceType"] == "Procedure":
            if status != "completed":
                self._ignored(resource, status, "completed procedures")
                return
            when = _day(resource.get("performedDateTime") or _get(resource, "performedPeriod", "start"))
            for key in keys:
                self._procedure(key, resource, _Stamp(when, order, source))
        elif status != "completed":
            self._ignored(resource, status, "completed family histories")
        else:
            has_pca = any(_codes(c.get("code")) & t.VS_PCA.keys for c in _list(resource.get("condition")) if isinstance(c, dict))
            self.family_history.append(_Stamp(None, order, source).reading(has_pca))

    def _ignored(self, resource: dict[str, Any], status: object, counted: str) -> None:
        self.issues.append(_issue(Severity.INFORMATION, "extract.ignored", resource, f"has status {status!r}; only {counted} count, so it is not used", "informational"))

    def _observation(self, key: str, resource: dict[str, Any], at: _Stamp) -> None:
        if key == p.PSA_PROFILE.key:
            self._quantity(self.psa, resource, at, PSA_UNITS, "psa")
        elif key == p.VOLUME_PROFILE.key:
            self._quantity(self.volume, resource, at, VOLUME_UNITS, "volume")
        elif key == p.PIRADS_PROFILE.key:
            score = resource.get("valueInteger")
            if isinstance(score, int) and not isinstance(score, bool) and 1 <= score <= 5:
                self.pirads.append(at.reading(score))
            else:
                self._unusable(resource, "pirads.value", "valueInteger", f"valueInteger {score!r} is not a PI-RADS score 1..5")
        elif key == p.OUTCOME_PROFILE.key:
            grades = {t.ISUP_VALUES[k] for k in _codes(resource.get("valueCodeableConcept")) if k in t.ISUP_VALUES}
            if len(grades) == 1:
                self.outcome.append(at.reading(grades.pop()))
            else:
                self._unusable(resource, "outcome.value", "valueCodeableConcept", "valueCodeableConcept has no single Gleason answer from VS-GleasonGrade")

    def _procedure(self, key: str, resource: dict[str, Any], at: _Stamp) -> None:
        if key == p.BIOPSY_PROFILE.key:
            category = {t.BIOPSY_TYPE_VALUES[k] for k in _codes(resource.get("category")) if k in t.BIOPSY_TYPE_VALUES}
            if len(category) != 1:
                self._unusable(resource, "biopsy.category", "category", "category has no single code from VS-BiopsyType, so typeOfBiopsy is missing")
            age = self._harmonised(resource, "performedAge", AGE_UNITS, "biopsy.age") if "performedAge" in resource else None
            biopsy = _Biopsy(category.pop() if len(category) == 1 else None, int(age) if age is not None else None)
            self.biopsies.append(at.reading(biopsy))
        elif key == p.DRE_PROFILE.key:
            outcome = {t.DRE_VALUES[k] for k in _codes(resource.get("outcome")) if k in t.DRE_VALUES}
            if len(outcome) == 1:
                self.dre.append(at.reading(outcome.pop()))
            else:
                self._unusable(resource, "dre.outcome", "outcome", "outcome has no single code from VS-DREOutcomeCode")

    def _quantity(self, into: list[_Reading[float]], resource: dict[str, Any], at: _Stamp, table: UnitTable, prefix: str) -> None:
        value = self._harmonised(resource, "valueQuantity", table, prefix)
        if value is not None:
            into.append(at.reading(float(value)))

    def _harmonised(self, resource: dict[str, Any], element: str, table: UnitTable, prefix: str) -> float | int | None:
        quantity = resource.get(element)
        value = quantity.get("value") if isinstance(quantity, dict) else None
        unit = quantity_unit(quantity) if isinstance(quantity, dict) else None
        if not is_number(value):
            self._unusable(resource, f"{prefix}.value", f"{element}.value", f"{element}.value {value!r} is not a number")
            return None
        harmonised = table.harmonise(value, unit) if unit is not None else None
        if harmonised is None:
            self._unusable(resource, f"{prefix}.unit", f"{element}.code", f"{element} unit {unit!r} is not a known {table.variable} unit; use {table.describe()}")
        elif not math.isfinite(harmonised):
            self._unusable(resource, f"{prefix}.range", f"{element}.value", f"{element}.value {value!r} is not a finite {table.variable}")
            return None
        return harmonised

    def _unusable(self, resource: dict[str, Any], rule: str, element: str, text: str) -> None:
        self.issues.append(_issue(Severity.ERROR, rule, resource, f"{text}; the record is not used", "value", f"{resource['resourceType']}.{element}"))

    def index_biopsy(self) -> _Reading[_Biopsy] | None:
        if not self.biopsies:
            return None
        chosen = max(self.biopsies, key=lambda r: (r.when is not None, r.when or date.min, r.value.age or -1, r.order))
        if len(self.biopsies) > 1:
            self.issues.append(Issue(Severity.INFORMATION, "extract.biopsies", f"Patient/{self.patient_id}: {len(self.biopsies)} completed biopsies; the latest, {chosen.source}, is the index biopsy (rule extract.biopsies)", "Patient", self.patient_id, code="informational"))
        return chosen


def _latest(readings: list[_Reading[V]], cutoff: date | None, issues: list[Issue]) -> _Reading[V] | None:
    """The latest reading on or before `cutoff` (module doc: dated before undated, then order)."""
    usable = readings
    if cutoff is not None:
        usable = []
        for reading in readings:
            if reading.when is not None and reading.when > cutoff:
                issues.append(Issue(Severity.INFORMATION, "extract.after-biopsy", f"{reading.source}: dated {reading.when} after the biopsy ({cutoff}); a predictor must precede the biopsy, so it is not used (rule extract.after-biopsy)", *reading.source.split("/", 1), code="informational"))
            else:
                usable.append(reading)
    return max(usable, key=lambda r: (r.when is not None, r.when or date.min, r.order), default=None)


def _age(biopsy: _Reading[_Biopsy] | None, patient: dict[str, Any]) -> int | None:
    if biopsy is None:
        return None
    if biopsy.value.age is not None:
        return biopsy.value.age
    born = _day(patient.get("birthDate"))
    if born is None or biopsy.when is None:
        return None
    return biopsy.when.year - born.year - ((biopsy.when.month, biopsy.when.day) < (born.month, born.day))


def _day(value: object) -> date | None:
    """The calendar day of a FHIR date/dateTime with at least day precision, else None."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    return _calendar_day(value[:10])


@lru_cache(maxsize=4096)
def _calendar_day(text: str) -> date | None:
    """`_day` of a YYYY-MM-DD prefix, memoised: a patient's records share a few dates, and
    every record's date is read whenever the patient's row is derived."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _get(resource: dict[str, Any], element: str, child: str) -> object:
    value = resource.get(element)
    return value.get(child) if isinstance(value, dict) else None


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _codes(concept: object) -> set[tuple[str, str]]:
    """(system, code) pairs of a CodeableConcept (tolerating malformed input)."""
    if not isinstance(concept, dict):
        return set()
    return {
        (c["system"], c["code"])
        for c in _list(concept.get("coding"))
        if isinstance(c, dict) and isinstance(c.get("system"), str) and isinstance(c.get("code"), str)
    }


def _issue(severity: Severity, rule: str, resource: dict[str, Any], text: str, code: str, path: str | None = None) -> Issue:
    resource_type, resource_id = resource.get("resourceType"), resource.get("id")
    return Issue(
        severity, rule, f"{resource_key(resource)}: {text} (rule {rule})",
        resource_type if isinstance(resource_type, str) else None,
        resource_id if isinstance(resource_id, str) else None,
        path, code=code,
    )


#: Rule ids raised only by extraction (it also reuses the profile rule ids for unusable values).
EXTRACT_RULES = (
    "extract.patient", "extract.other-patient", "extract.ignored", "extract.biopsies",
    "extract.after-biopsy", "extract.no-patient",
)
