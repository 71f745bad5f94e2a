"""The rule engine: every declared rule fails on a resource that breaks it and passes on the
IG's own examples (NF-PIL-3); cross-resource checks; the OperationOutcome (F-STD-1)."""

from __future__ import annotations

import copy
import time
from typing import Any, Callable

import pytest

from flute.fhir import terminology as t
from flute.fhir.issues import Severity
from flute.fhir.validate import all_rule_ids, check_references, operation_outcome, validate_resource

from .ig_examples import S1, S2, ig_resources

Mutation = Callable[[dict[str, Any]], None]
LEGACY = f"{t.IG_LEGACY_CANONICAL}/StructureDefinition/"


def _set(path: str, value: Any) -> Mutation:
    """Set (or with `...` delete) a dotted element; numeric segments index arrays."""

    def mutate(resource: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = resource
        for key in parents:
            node = node[int(key)] if key.isdigit() else node.setdefault(key, {})
        if value is ...:
            node.pop(last, None)
        else:
            node[int(last) if last.isdigit() else last] = copy.deepcopy(value)

    return mutate


def _both(*mutations: Mutation) -> Mutation:
    def mutate(resource: dict[str, Any]) -> None:
        for mutation in mutations:
            mutation(resource)

    return mutate


def _concept(code: str, system: str = t.SNOMED) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


# rule id -> (IG resource it starts from, mutation that must make exactly that rule fire)
FAILING: dict[str, tuple[str, Mutation]] = {
    "resource.id": ("psa", _set("id", ...)),
    "resource.profile": ("psa", _set("meta.profile", [LEGACY + "PR-Biopsy"])),
    "resource.unsupported": ("psa", _set("resourceType", "Condition")),
    "profile.unmatched": ("psa", _both(_set("meta", ...), _set("code", _concept("1234-5", t.LOINC)))),
    "observation.status": ("psa", _set("status", "done")),
    "observation.code": ("pirads", _both(_set("meta", ...), _set("code", ...))),
    "procedure.status": ("biopsy", _set("status", "finished")),
    "procedure.subject": ("biopsy", _set("subject", ...)),
    "familymemberhistory.status": ("fmh", _set("status", "done")),
    "familymemberhistory.patient": ("fmh", _set("patient", {"reference": "Group/g1"})),
    "familymemberhistory.relationship": ("fmh", _set("relationship", ...)),
    "fmh.condition": ("fmh", _set("condition", [])),
    "fmh.condition.code": ("fmh", _set("condition.0.code", _concept("73211009"))),
    "fmh.date": ("fmh", _set("date", "18-03-2024")),
    "biopsy.code": ("biopsy", _set("code", _concept("12345"))),
    "biopsy.subject": ("biopsy", _set("subject", {"reference": "Practitioner/p1"})),
    "biopsy.category": ("biopsy", _set("category", _concept("999"))),
    "biopsy.bodySite": ("biopsy", _set("bodySite", [_concept("12345")])),
    "biopsy.performed": ("biopsy", _set("performedAge", ...)),
    "biopsy.performedAge": ("biopsy", _set("performedAge", "54")),
    "biopsy.age.value": ("biopsy", _set("performedAge.value", ...)),
    "biopsy.age.unit": ("biopsy", _set("performedAge.code", "mo")),
    "biopsy.age.unit-code": ("biopsy", _both(_set("performedAge.code", ...), _set("performedAge.unit", "a"))),
    "biopsy.age.range": ("biopsy", _set("performedAge.value", 7)),
    "biopsy.performedDateTime": ("biopsy", _both(_set("performedAge", ...), _set("performedDateTime", "2024-13-01"))),
    "biopsy.performedPeriod": ("biopsy", _both(_set("performedAge", ...), _set("performedPeriod", "2024"))),
    "biopsy.performedPeriod.start": ("biopsy", _both(_set("performedAge", ...), _set("performedPeriod", {"start": "yesterday"}))),
    "dre.code": ("dre", _set("code", _concept("12345"))),
    "dre.subject": ("dre", _set("subject", {"reference": "urn:uuid:0f0c1c8e-0000-4000-8000-000000000000"})),
    "dre.bodySite": ("dre", _set("bodySite", _concept("41216001"))),
    "dre.outcome": ("dre", _set("outcome", _concept("263654008"))),
    "dre.performed": ("dre", _set("performedDateTime", "2024-06-01")),
    "dre.performedAge": ("dre", _set("performedAge", [54])),
    "dre.age.value": ("dre", _set("performedAge.value", "54")),
    "dre.age.unit": ("dre", _set("performedAge.code", "wk")),
    "dre.age.unit-code": ("dre", _both(_set("performedAge.code", ...), _set("performedAge.unit", "a"))),
    "dre.age.range": ("dre", _set("performedAge.value", 300)),
    "dre.performedDateTime": ("dre", _both(_set("performedAge", ...), _set("performedDateTime", "2024-06-01T10:00"))),
    "psa.code": ("psa", _set("code", _concept("2345-7", t.LOINC))),
    "psa.subject": ("psa", _set("subject", ...)),
    "psa.valueQuantity": ("psa", _set("valueQuantity", ...)),
    "psa.value": ("psa", _set("valueQuantity.value", "5")),
    "psa.unit": ("psa", _set("valueQuantity.code", "mg/L")),
    "psa.unit-code": ("psa", _both(_set("valueQuantity.code", ...), _set("valueQuantity.unit", "ng/mL"))),
    "psa.decimals": ("psa", _set("valueQuantity.value", 4.25)),
    "psa.range": ("psa", _set("valueQuantity.value", -1)),
    "psa.effective": ("psa", _set("effectiveDateTime", "2024-02-30")),
    "volume.code": ("volume", _set("code", _concept("1297142008"))),
    "volume.subject": ("volume", _set("subject", "Patient/x")),
    "volume.bodySite": ("volume", _set("bodySite", _concept("12345"))),
    "volume.valueQuantity": ("volume", _set("valueQuantity", [{"value": 30, "code": "mL", "system": t.UCUM}])),
    "volume.value": ("volume", _set("valueQuantity.value", True)),
    "volume.unit": ("volume", _set("valueQuantity.system", "http://example.org/units")),
    "volume.unit-code": ("volume", _both(_set("valueQuantity.code", ...), _set("valueQuantity.unit", "cc"))),
    "volume.decimals": ("volume", _set("valueQuantity.value", 30.25)),
    "volume.range": ("volume", _set("valueQuantity.value", 0.5)),
    "volume.effective": ("volume", _set("effectiveDateTime", 20240301)),
    "pirads.code": ("pirads", _set("code.coding.0.system", t.LOINC)),
    "pirads.subject": ("pirads", _set("subject", {"display": "Peter"})),
    "pirads.value": ("pirads", _set("valueInteger", 6)),
    "pirads.effective": ("pirads", _set("effectiveDateTime", "")),
    "outcome.code": ("outcome", _set("code", _concept("LL0000-0", t.LOINC))),
    "outcome.subject": ("outcome", _set("subject", {"reference": "Group/g"})),
    "outcome.value": ("outcome", _set("valueCodeableConcept", _concept("LA00000-0", t.LOINC))),
    "outcome.component": ("outcome", _set("component", [{"code": _concept("x")}])),
    "outcome.effective": ("outcome", _set("effectiveDateTime", "2024/06/20")),
    "patient.gender": ("patient", _set("gender", "M")),
    "patient.birthDate": ("patient", _set("birthDate", "25/12/1974")),
}
CROSS_RESOURCE = {"resource.type", "resource.duplicate", "reference.dangling"}

#: Variants that stay valid: units the harmonisation accepts, the boundaries, FLUTE's codes.
PASSING: list[tuple[str, Mutation]] = [
    ("psa", _set("valueQuantity.code", "ug/L")),
    ("psa", _set("valueQuantity.code", "ng/dL")),
    ("psa", _set("valueQuantity.value", 0)),
    ("psa", _set("valueQuantity.value", 4.2)),
    ("psa", _set("meta.profile", [f"{t.IG_CANONICAL}/StructureDefinition/PR-ProstateSpecificAntigen|0.1.0"])),
    ("psa", _set("meta", ...)),  # recognised by its LOINC code
    ("psa", _set("subject", {"reference": "https://hospital.example/fhir/Patient/EXP-S1-Patient/_history/3"})),
    ("volume", _set("valueQuantity.code", "mL")),
    ("volume", _set("valueQuantity.code", "cc")),
    ("pirads", _set("valueInteger", 1)),
    ("pirads", _set("valueInteger", 5)),
    ("biopsy", _both(_set("performedAge", ...), _set("performedDateTime", "2024-06-10T09:30:00+02:00"))),
    ("biopsy", _both(_set("performedAge", ...), _set("performedPeriod", {"start": "2024-06"}))),
    ("biopsy", _set("category", _concept("884001"))),
    ("dre", _set("outcome", _concept("17621005"))),
    ("fmh", _set("condition.0.code", _concept("399068003"))),
    ("fmh", _both(_set("meta", ...), _set("condition.0.code", _concept("73211009")))),  # not a PCa history: no profile
    ("outcome", _set("valueCodeableConcept", {"coding": [t.NO_CANCER.to_fhir()]})),
    ("patient", _set("birthDate", "1974")),
]


@pytest.fixture(scope="module")
def ig() -> dict[str, dict[str, Any]]:
    return ig_resources(S1)


def _mutated(ig: dict[str, dict[str, Any]], base: str, mutation: Mutation) -> dict[str, Any]:
    resource = copy.deepcopy(ig[base])
    mutation(resource)
    return resource


@pytest.mark.parametrize("bundle", [S1, S2], ids=["S1", "S2"])
def test_the_ig_examples_validate_without_any_issue(bundle: Any) -> None:
    resources = list(ig_resources(bundle).values())
    assert [i for r in resources for i in validate_resource(r)] == []
    assert check_references(resources, set()) == []


def test_every_declared_rule_has_a_failing_case() -> None:
    assert set(all_rule_ids()) == set(FAILING) | CROSS_RESOURCE


@pytest.mark.parametrize("rule", sorted(FAILING))
def test_rule_fails_on_a_resource_that_breaks_it_and_passes_on_the_example(rule: str, ig: dict[str, dict[str, Any]]) -> None:
    base, mutation = FAILING[rule]
    assert not [i for i in validate_resource(ig[base]) if i.rule == rule]
    issues = validate_resource(_mutated(ig, base, mutation), "test#1")
    fired = [i for i in issues if i.rule == rule]
    assert fired, [i.message for i in issues]
    for issue in fired:
        assert issue.message.endswith(f"(rule {rule})")
        assert issue.location == "test#1"
        assert issue.code


@pytest.mark.parametrize("case", range(len(PASSING)))
def test_accepted_variants_raise_no_error(case: int, ig: dict[str, dict[str, Any]]) -> None:
    base, mutation = PASSING[case]
    issues = validate_resource(_mutated(ig, base, mutation))
    assert not [i.message for i in issues if i.severity.blocks_import]


def test_a_bad_psa_unit_message_says_what_where_why_and_how(ig: dict[str, dict[str, Any]]) -> None:
    (issue,) = validate_resource(_mutated(ig, "psa", _set("valueQuantity.code", "mg/L")))
    assert issue.message == (
        "Observation/EXP-S1-Observation-PSA: Observation.valueQuantity.code 'mg/L' is not a known PSA unit; "
        "use ng/mL, ug/L or ng/dL (rule psa.unit)"
    )
    assert (issue.severity, issue.path, issue.code) == (Severity.ERROR, "Observation.valueQuantity.code", "code-invalid")
    assert (issue.resource_type, issue.resource_id) == ("Observation", "EXP-S1-Observation-PSA")


def test_extra_decimals_and_unit_text_only_warn(ig: dict[str, dict[str, Any]]) -> None:
    issues = validate_resource(_mutated(ig, "psa", _set("valueQuantity.value", 4.25)))
    assert [(i.rule, i.severity) for i in issues] == [("psa.decimals", Severity.WARNING)]
    assert "rounded to 4.3 ng/mL" in issues[0].message


def test_a_non_object_or_typeless_resource_is_reported_not_raised() -> None:
    for resource in ([], "Patient", None, {"id": "x"}, {"resourceType": 7}):
        (issue,) = validate_resource(resource)  # type: ignore[arg-type]
        assert issue.rule == "resource.type" and issue.severity is Severity.ERROR


def test_a_profile_claim_is_checked_even_when_the_code_says_otherwise(ig: dict[str, dict[str, Any]]) -> None:
    # meta.profile wins over recognition by code: a "PSA" that carries the volume code
    psa_as_volume = _mutated(ig, "psa", _set("code", _concept(t.PROSTATE_VOLUME.code)))
    assert {i.rule for i in validate_resource(psa_as_volume)} == {"psa.code"}


def test_an_unknown_flute_profile_name_warns(ig: dict[str, dict[str, Any]]) -> None:
    resource = _mutated(ig, "psa", _set("meta.profile", [LEGACY + "PR-Nonexistent"]))
    assert [(i.rule, i.severity) for i in validate_resource(resource)] == [("resource.profile", Severity.WARNING)]


def test_duplicates_and_dangling_references(ig: dict[str, dict[str, Any]]) -> None:
    psa, patient = ig["psa"], ig["patient"]
    assert check_references([psa], {("Patient", patient["id"])}) == []
    assert check_references([psa], lambda rtype, rid: rtype == "Patient") == []
    assert check_references([patient, psa], set()) == []
    (dangling,) = check_references([psa], set())
    assert (dangling.rule, dangling.code, dangling.resource_id) == ("reference.dangling", "not-found", psa["id"])
    assert "Patient/EXP-S1-Patient" in dangling.message
    (duplicate,) = check_references([patient, psa, copy.deepcopy(psa)], set())
    assert (duplicate.rule, duplicate.code) == ("resource.duplicate", "duplicate")


def test_operation_outcome_carries_severity_code_diagnostics_expression_location_and_rule(ig: dict[str, dict[str, Any]]) -> None:
    issues = validate_resource(_mutated(ig, "pirads", _set("valueInteger", 9)), "file.ndjson:3")
    outcome = operation_outcome(issues)
    assert outcome["resourceType"] == "OperationOutcome"
    (entry,) = outcome["issue"]
    assert entry == {
        "severity": "error",
        "code": "value",
        "diagnostics": issues[0].message,
        "details": {
            "coding": [{"system": "urn:flute:validation-rule", "code": "pirads.value"}],
            "text": "Observation/EXP-S1-Observation-PIRADS",
        },
        "expression": ["Observation.valueInteger"],
        "location": ["file.ndjson:3"],
    }
    assert operation_outcome([])["issue"] == [{"severity": "information", "code": "informational", "diagnostics": "No issues found"}]


def test_validation_throughput_note(ig: dict[str, dict[str, Any]]) -> None:
    """Micro-benchmark note, no timed assertion: prints resources/s on the IG resources."""
    resources = list(ig.values())
    started, rounds = time.perf_counter(), 2000
    for _ in range(rounds):
        for resource in resources:
            validate_resource(resource)
    rate = rounds * len(resources) / (time.perf_counter() - started)
    print(f"validate_resource: {rate:,.0f} resources/s on the IG example resources")
    assert rate > 0
