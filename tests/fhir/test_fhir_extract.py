"""Extraction of StudyVariables (F-PIL-27..32), inclusion (F-PIL-1..4) and label (F-PIL-9),
including every documented rule for real-world mess."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flute.cohort.variables import StudyRow
from flute.fhir import terminology as t
from flute.fhir.extract import EXTRACT_RULES, InclusionRule, extract_all, extract_patient, group_by_patient, subject_id
from flute.fhir.issues import Issue

from .ig_examples import S1, S2, ig_resources, outcome_observation, variant

PID = "EXP-S1-Patient"


@pytest.fixture()
def ig() -> dict[str, dict[str, Any]]:
    return ig_resources(S1)


def _row(ig: dict[str, dict[str, Any]], *extra: dict[str, Any], drop: tuple[str, ...] = ("outcome",), rule: InclusionRule = InclusionRule()) -> tuple[StudyRow, list[Issue]]:
    resources = [r for k, r in ig.items() if k not in drop and k != "patient"] + list(extra)
    return extract_patient(ig["patient"], resources, rule)


def _psa(resource_id: str, value: float, when: str | None, status: str = "final", unit: str = "ng/mL") -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": resource_id,
        "status": status,
        "code": {"coding": [t.PSA.to_fhir()]},
        "subject": {"reference": f"Patient/{PID}"},
        "valueQuantity": {"value": value, "code": unit, "system": t.UCUM},
    }
    if when is not None:
        resource["effectiveDateTime"] = when
    return resource


def _rules(issues: list[Issue]) -> set[str]:
    return {i.rule for i in issues}


@pytest.mark.parametrize(
    "bundle, included, variables",
    [
        (S1, True, {"ageAtBiopsy": 54, "pcaFamilyHistory": 1, "typeOfBiopsy": 2, "psa": 5.0, "dre": 1, "prostateVolume": 30.0, "pirads": 3}),
        (S2, False, {"ageAtBiopsy": 54, "pcaFamilyHistory": 1, "typeOfBiopsy": 0, "psa": 1.0, "dre": 0, "prostateVolume": 30.0, "pirads": 3}),
    ],
    ids=["S1-included", "S2-excluded"],
)
def test_the_ig_examples_extract_as_the_ig_states(bundle: Path, included: bool, variables: dict[str, Any]) -> None:
    resources = [r for k, r in ig_resources(bundle).items() if k != "outcome"]
    rows, issues = extract_all(resources)
    assert issues == []
    (row,) = rows
    patient = resources[0]["id"]
    assert row.to_json() == {"patient": patient, "included": included, "variables": variables, "csPCa": None}
    assert len(row.source_resources) == 6


def test_group_by_patient_and_subject_id(ig: dict[str, dict[str, Any]]) -> None:
    other = variant(ig["psa"], id="elsewhere", subject={"reference": "Patient/other"})
    groups = group_by_patient([*ig.values(), other, {"resourceType": "Observation", "id": "loose"}])
    assert list(groups) == [PID, "other"]
    assert len(groups[PID]) == len(ig) and groups["other"] == [other]
    assert subject_id(ig["fmh"]) == PID and subject_id(ig["patient"]) == PID
    assert subject_id({"resourceType": "Observation", "subject": {"reference": "Group/1"}}) is None


def test_the_latest_final_psa_on_or_before_the_biopsy_is_used(ig: dict[str, dict[str, Any]]) -> None:
    ig["biopsy"] = variant(ig["biopsy"], performedAge=..., performedDateTime="2024-06-10")
    row, issues = _row(
        ig,
        _psa("early", 7.0, "2024-01-05"),
        _psa("late-prelim", 9.0, "2024-06-09", status="preliminary"),
        _psa("void", 11.0, "2024-06-09", status="entered-in-error"),
        _psa("after", 12.0, "2024-07-01"),
        _psa("undated", 13.0, None),
        _psa("corrected", 6.0, "2024-06-04", status="corrected"),
    )
    assert row.variables["psa"] == 6.0  # IG PSA 5.0 is dated 2024-06-03, the corrected one 06-04
    assert row.biopsy_date is not None and row.biopsy_date.isoformat() == "2024-06-10"
    assert "Observation/corrected" in row.source_resources
    assert _rules(issues) == {"extract.ignored", "extract.after-biopsy"}
    ignored = sorted(i.resource_id or "" for i in issues if i.rule == "extract.ignored")
    assert ignored == ["late-prelim", "void"]


def test_without_comparable_dates_the_latest_dated_then_the_last_read_psa_counts(ig: dict[str, dict[str, Any]]) -> None:
    row, _ = _row(ig, _psa("old", 2.0, "2020-01-01"))  # no biopsy date: latest effective date wins
    assert row.variables["psa"] == 5.0
    del ig["psa"]
    row, _ = _row(ig, _psa("u1", 2.0, None), _psa("u2", 3.5, None))
    assert row.variables["psa"] == 3.5


def test_units_are_harmonised_and_bad_units_reported(ig: dict[str, dict[str, Any]]) -> None:
    del ig["psa"]
    row, issues = _row(ig, _psa("dl", 455, "2024-06-03", unit="ng/dL"))
    assert row.variables["psa"] == 4.6 and issues == []
    row, issues = _row(ig, _psa("bad", 4.0, "2024-06-03", unit="mg/L"))
    assert row.variables["psa"] is None and _rules(issues) == {"psa.unit"}
    assert "'mg/L'" in issues[0].message and "ng/mL, ug/L or ng/dL" in issues[0].message


def test_age_from_birth_date_and_biopsy_date_when_no_performed_age(ig: dict[str, dict[str, Any]]) -> None:
    ig["biopsy"] = variant(ig["biopsy"], performedAge=..., performedDateTime="2024-12-24T10:00:00Z")
    row, _ = _row(ig)
    assert row.variables["ageAtBiopsy"] == 49  # born 1974-12-25: one day short of 50
    ig["biopsy"]["performedDateTime"] = "2024-12-25"
    assert _row(ig)[0].variables["ageAtBiopsy"] == 50
    ig["biopsy"] = variant(ig["biopsy"], performedDateTime=...)
    assert _row(ig)[0].variables["ageAtBiopsy"] is None


def test_the_latest_completed_biopsy_is_the_index_biopsy(ig: dict[str, dict[str, Any]]) -> None:
    first = variant(ig["biopsy"], id="first", performedAge={"value": 52, "code": "a", "system": t.UCUM}, category={"coding": [t.BIOPSY_INITIAL.to_fhir()]})
    stopped = variant(ig["biopsy"], id="stopped", status="stopped", performedAge={"value": 60, "code": "a", "system": t.UCUM})
    row, issues = _row(ig, first, stopped)
    assert (row.variables["typeOfBiopsy"], row.variables["ageAtBiopsy"]) == (2, 54)
    assert _rules(issues) == {"extract.biopsies", "extract.ignored"}
    del ig["biopsy"]
    row, _ = _row(ig)
    assert (row.variables["typeOfBiopsy"], row.variables["ageAtBiopsy"]) == (None, None)


def test_family_history_follows_the_ig_rule(ig: dict[str, dict[str, Any]]) -> None:
    not_pca = variant(ig["fmh"], condition=[{"code": {"coding": [{"system": t.SNOMED, "code": "73211009"}]}}])
    assert _row(ig, drop=("outcome", "fmh"))[0].variables["pcaFamilyHistory"] == 0
    assert _row(ig, not_pca, drop=("outcome", "fmh"))[0].variables["pcaFamilyHistory"] == 0
    partial = variant(ig["fmh"], status="partial")
    row, issues = _row(ig, partial, drop=("outcome", "fmh"))
    assert row.variables["pcaFamilyHistory"] == 0 and _rules(issues) == {"extract.ignored"}
    second_condition = variant(ig["fmh"], condition=[not_pca["condition"][0], ig["fmh"]["condition"][0]])
    assert _row(ig, second_condition, drop=("outcome", "fmh"))[0].variables["pcaFamilyHistory"] == 1


def test_dre_any_suspicious_is_1_and_no_completed_dre_is_missing(ig: dict[str, dict[str, Any]]) -> None:
    normal = variant(ig["dre"], id="normal", outcome={"coding": [t.DRE_NORMAL.to_fhir()]})
    assert _row(ig, normal)[0].variables["dre"] == 1
    assert _row(ig, normal, drop=("outcome", "dre"))[0].variables["dre"] == 0
    assert _row(ig, drop=("outcome", "dre"))[0].variables["dre"] is None


@pytest.mark.parametrize(
    "code, isup, cspca",
    [("LA30794-4", 1, 0), ("LA30795-1", 2, 1), ("LA30796-9", 3, 1), ("LA30797-7", 4, 1), ("LA30798-5", 5, 1), (t.NO_CANCER.code, 0, 0)],
)
def test_the_gleason_answer_gives_isup_and_the_cspca_label(ig: dict[str, dict[str, Any]], code: str, isup: int, cspca: int) -> None:
    system = t.SNOMED if code == t.NO_CANCER.code else t.LOINC
    row, issues = _row(ig, outcome_observation(PID, code, system))
    assert (row.isup, row.cspca, row.to_json()["csPCa"], issues) == (isup, cspca, cspca, [])


def test_an_unknown_gleason_answer_leaves_the_row_unlabelled(ig: dict[str, dict[str, Any]]) -> None:
    row, issues = _row(ig, outcome_observation(PID, "LA99999-9"))
    assert row.isup is None and _rules(issues) == {"outcome.value"}


@pytest.mark.parametrize(
    "psa, dre_suspicious, rule, included",
    [
        (3.0, False, InclusionRule(), True),
        (3.0, False, InclusionRule(3.0, ">"), False),
        (3.1, False, InclusionRule(3.0, ">"), True),
        (2.9, False, InclusionRule(), False),
        (1.0, True, InclusionRule(), True),
    ],
)
def test_inclusion_by_psa_threshold_or_suspicious_dre(ig: dict[str, dict[str, Any]], psa: float, dre_suspicious: bool, rule: InclusionRule, included: bool) -> None:
    ig["psa"]["valueQuantity"]["value"] = psa
    if not dre_suspicious:
        ig["dre"]["outcome"] = {"coding": [t.DRE_NORMAL.to_fhir()]}
    assert _row(ig, rule=rule)[0].included is included


def test_inclusion_rule_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="comparison"):
        InclusionRule(3.0, "<")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threshold"):
        InclusionRule(float("nan"))


def test_resources_of_another_patient_and_orphans_are_reported(ig: dict[str, dict[str, Any]]) -> None:
    stray = variant(ig["psa"], id="stray", subject={"reference": "Patient/someone-else"})
    row, issues = _row(ig, stray)
    assert row.variables["psa"] == 5.0 and _rules(issues) == {"extract.other-patient"}
    rows, issues = extract_all([stray])
    assert rows == [] and _rules(issues) == {"extract.no-patient"}


def test_unvalidated_garbage_is_reported_never_raised(ig: dict[str, dict[str, Any]]) -> None:
    garbage = [
        variant(ig["pirads"], id="p9", valueInteger=9),
        variant(ig["dre"], id="d?", outcome="suspicious"),
        variant(ig["volume"], id="v", valueQuantity={"value": "30", "code": "mL"}),
        variant(ig["biopsy"], id="b", category=None, performedAge={"value": 54, "code": "mo"}),
    ]
    row, issues = extract_patient(ig["patient"], garbage)
    assert _rules(issues) == {"pirads.value", "dre.outcome", "volume.value", "biopsy.category", "biopsy.age.unit"}
    assert row.variables["pirads"] is None and row.variables["dre"] is None
    row, issues = extract_patient({"resourceType": "Patient"}, [])
    assert row.patient == "" and _rules(issues) == {"extract.patient"}
    assert {"extract.patient", "extract.no-patient", "extract.other-patient", "extract.ignored", "extract.biopsies", "extract.after-biopsy"} == set(EXTRACT_RULES)
