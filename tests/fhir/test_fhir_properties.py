"""Property-based tests: whatever is thrown at the readers, the validator and the extraction
(malformed JSON, wrong types, missing/duplicate/dangling references, out-of-range values, bad
units, unknown codes, oversized input), each case yields a specific Issue, nothing raises, and
valid resources are never dropped (NF-PIL-3)."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from flute.fhir import terminology as t
from flute.fhir.extract import EXTRACT_RULES, extract_all, extract_patient
from flute.fhir.readers import READER_RULES, ReadLimits, document_units, read_file
from flute.fhir.screen import screen
from flute.fhir.units import PSA_UNITS, VOLUME_UNITS
from flute.fhir.validate import all_rule_ids, check_references, validate_resource

from .ig_examples import S1, ig_resources

IG = ig_resources(S1)
KNOWN_RULES = set(all_rule_ids()) | set(EXTRACT_RULES) | set(READER_RULES)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
not_object = json_values.filter(lambda v: v is not None and not isinstance(v, dict))
not_string = json_values.filter(lambda v: v is not None and not isinstance(v, str))
not_array = json_values.filter(lambda v: v is not None and not isinstance(v, list))
not_integer = json_values.filter(lambda v: v is not None and (isinstance(v, bool) or not isinstance(v, int)))
not_number = json_values.filter(lambda v: v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))))

# (IG resource, element path, wrong values, rules of which at least one must fire)
WRONG_TYPES: list[tuple[str, str, st.SearchStrategy[Any], set[str]]] = [
    ("psa", "id", not_string, {"resource.id"}),
    ("psa", "meta", not_object, {"resource.profile"}),
    ("psa", "status", not_string, {"observation.status"}),
    ("psa", "code", not_object, {"observation.code", "psa.code"}),
    ("psa", "code.coding", not_array, {"psa.code"}),
    ("psa", "subject", not_object, {"psa.subject"}),
    ("psa", "subject.reference", not_string, {"psa.subject"}),
    ("psa", "valueQuantity", not_object, {"psa.valueQuantity"}),
    ("psa", "valueQuantity.value", not_number, {"psa.value"}),
    ("psa", "valueQuantity.code", not_string, {"psa.unit"}),
    ("psa", "effectiveDateTime", not_string, {"psa.effective"}),
    ("volume", "valueQuantity", not_object, {"volume.valueQuantity"}),
    ("volume", "bodySite", not_object, {"volume.bodySite"}),
    ("pirads", "valueInteger", not_integer, {"pirads.value"}),
    ("outcome", "valueCodeableConcept", not_object, {"outcome.value"}),
    ("biopsy", "category", not_object, {"biopsy.category"}),
    ("biopsy", "category.coding", not_array, {"biopsy.category"}),
    ("biopsy", "bodySite", not_array, {"biopsy.bodySite"}),
    ("biopsy", "subject", not_object, {"biopsy.subject", "procedure.subject"}),
    ("biopsy", "performedAge", not_object, {"biopsy.performedAge"}),
    ("dre", "outcome", not_object, {"dre.outcome"}),
    ("fmh", "status", not_string, {"familymemberhistory.status"}),
    ("fmh", "patient", not_object, {"familymemberhistory.patient"}),
    ("fmh", "condition", not_array, {"fmh.condition"}),
    ("patient", "gender", not_string, {"patient.gender"}),
    ("patient", "birthDate", not_string, {"patient.birthDate"}),
]


def _replaced(base: str, path: str, value: Any, new_id: str | None = None) -> dict[str, Any]:
    resource = copy.deepcopy(IG[base])
    *parents, last = path.split(".")
    node = resource
    for key in parents:
        node = node[key]
    node[last] = value
    if new_id is not None and path != "id":
        resource["id"] = new_id
    return resource


def _assert_reported(issues: list[Any], rules: set[str]) -> None:
    assert all(i.rule in KNOWN_RULES and i.message.endswith(f"(rule {i.rule})") for i in issues)
    assert {i.rule for i in issues if i.severity.blocks_import} & rules, [i.message for i in issues]


@st.composite
def wrong_typed(draw: st.DrawFn) -> tuple[dict[str, Any], set[str]]:
    base, path, values, rules = draw(st.sampled_from(WRONG_TYPES))
    return _replaced(base, path, draw(values)), rules


@SETTINGS
@given(data=st.binary(max_size=300))
def test_readers_turn_any_bytes_into_resources_or_reader_issues(data: bytes) -> None:
    for unit in document_units(data, "in.json"):
        for entry in unit.entries:
            assert (entry.resource is None) != (entry.error is None) or entry.method == "DELETE"
            assert entry.error is None or entry.error.rule in READER_RULES


@SETTINGS
@given(document=json_values)
def test_readers_turn_any_json_into_resources_or_reader_issues(document: Any) -> None:
    for unit in document_units(orjson.dumps(document), "in.json"):
        for entry in unit.entries:
            assert entry.resource is not None or (entry.error is not None and entry.error.rule in READER_RULES) or entry.method == "DELETE"


@SETTINGS
@given(lines=st.lists(st.one_of(st.sampled_from(sorted(IG)), st.binary(max_size=60).filter(lambda b: b"\n" not in b and b"\r" not in b and b.strip())), max_size=12))
def test_ndjson_keeps_every_valid_line_whatever_surrounds_it(lines: list[str | bytes]) -> None:
    written = [orjson.dumps(IG[line]) if isinstance(line, str) else line for line in lines]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "mixed.ndjson"
        path.write_bytes(b"\n".join(written))
        units = list(read_file(path))
    by_line = {int(u.entries[0].location.rsplit(":", 1)[1]): u.entries[0] for u in units}
    for number, line in enumerate(lines, start=1):
        if isinstance(line, str):
            assert by_line[number].resource == IG[line]
        else:
            entry = by_line[number]
            assert entry.resource is not None or (entry.error is not None and entry.error.rule in READER_RULES)


@SETTINGS
@given(case=wrong_typed())
def test_wrong_types_are_reported_under_the_elements_rule(case: tuple[dict[str, Any], set[str]]) -> None:
    resource, rules = case
    _assert_reported(validate_resource(resource), rules)


@SETTINGS
@given(value=st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-10**6, 10**6)))
def test_psa_values_outside_the_plausible_range_are_errors_inside_are_fine(value: float) -> None:
    issues = validate_resource(_replaced("psa", "valueQuantity.value", value))
    rules = {i.rule for i in issues if i.severity.blocks_import}
    assert rules == (set() if 0 <= value <= 10_000 else {"psa.range"})


@SETTINGS
@given(score=st.integers())
def test_pirads_outside_1_to_5_is_an_error(score: int) -> None:
    rules = {i.rule for i in validate_resource(_replaced("pirads", "valueInteger", score))}
    assert rules == (set() if 1 <= score <= 5 else {"pirads.value"})


@SETTINGS
@given(unit=st.text(max_size=8), target=st.sampled_from([("psa", PSA_UNITS), ("volume", VOLUME_UNITS)]))
def test_units_outside_the_tables_are_errors(unit: str, target: tuple[str, Any]) -> None:
    base, table = target
    issues = validate_resource(_replaced(base, "valueQuantity.code", unit))
    if table.accepts(unit):
        assert not [i for i in issues if i.severity.blocks_import]
    else:
        assert {i.rule for i in issues} == {f"{base}.unit"}
        # Messages quote the offending unit (long renderings are shortened to 57 chars + "...").
        assert repr(unit)[:57] in issues[0].message or "no unit" in issues[0].message


BOUND = [
    ("biopsy", "category", "biopsy.category", t.VS_BIOPSY_TYPE),
    ("dre", "outcome", "dre.outcome", t.VS_DRE_OUTCOME),
    ("outcome", "valueCodeableConcept", "outcome.value", t.VS_GLEASON_GRADE),
]


@SETTINGS
@given(code=st.text(min_size=1, max_size=20), system=st.sampled_from([t.SNOMED, t.LOINC, "http://example.org"]), target=st.sampled_from(BOUND))
def test_codes_outside_a_required_value_set_are_errors(code: str, system: str, target: tuple[str, str, str, t.ValueSet]) -> None:
    base, element, rule, value_set = target
    assume((system, code) not in value_set.keys)
    issues = validate_resource(_replaced(base, element, {"coding": [{"system": system, "code": code}]}))
    assert {i.rule for i in issues} == {rule} and issues[0].code == "code-invalid"


@SETTINGS
@given(limit=st.integers(50, 2_000), padding=st.integers(0, 2_500))
def test_resources_above_the_size_limit_are_refused_below_accepted(limit: int, padding: int) -> None:
    resource = {"resourceType": "Observation", "id": "o", "note": [{"text": "x" * padding}]}
    raw = orjson.dumps(resource)
    limits = ReadLimits(max_resource_bytes=limit)
    for data in (raw, orjson.dumps({"resourceType": "Bundle", "type": "batch", "entry": [{"resource": resource}]})):
        (unit,) = list(document_units(data, "in.json", limits))
        (entry,) = unit.entries
        if len(raw) > limit:
            assert entry.resource is None and entry.error is not None and entry.error.rule == "reader.oversized"
        else:
            assert entry.resource == resource


@SETTINGS
@given(present=st.sets(st.integers(0, 5)), subjects=st.lists(st.integers(0, 5), max_size=8), ids=st.lists(st.integers(0, 3), max_size=8))
def test_dangling_and_duplicate_references_are_exactly_reported(present: set[int], subjects: list[int], ids: list[int]) -> None:
    patients = [{"resourceType": "Patient", "id": f"p{i}"} for i in sorted(present)]
    observations = [
        {"resourceType": "Observation", "id": f"o{ids[n] if n < len(ids) else 100 + n}", "subject": {"reference": f"Patient/p{s}"}}
        for n, s in enumerate(subjects)
    ]
    issues = check_references([*patients, *observations], {("Patient", "p5")})
    dangling = {i.resource_id for i in issues if i.rule == "reference.dangling"}
    duplicated = {i.resource_id for i in issues if i.rule == "resource.duplicate"}
    assert dangling == {o["id"] for o in observations if int(o["subject"]["reference"][9:]) not in present | {5}}
    ids_seen = [o["id"] for o in observations]
    assert duplicated == {i for i in ids_seen if ids_seen.count(i) > 1}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(garbage=st.lists(st.one_of(wrong_typed().map(lambda c: c[0]), json_values), max_size=6))
def test_garbage_never_crashes_extraction_nor_displaces_valid_data(garbage: list[Any]) -> None:
    fresh = [(dict(g, id=f"garbage-{n}") if isinstance(g, dict) and isinstance(g.get("resourceType"), str) else g) for n, g in enumerate(garbage)]
    valid = [r for k, r in IG.items() if k != "outcome"]
    row, issues = extract_patient(IG["patient"], [*valid[1:], *[g for g in fresh if isinstance(g, dict)]])
    assert all(i.rule in KNOWN_RULES for i in issues)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "mixed.ndjson"
        path.write_bytes(b"\n".join(orjson.dumps(x) for x in [*fresh[:3], *valid, *fresh[3:]]))
        screened = screen(read_file(path))
    assert all(resource in screened.accepted for resource in valid)
    rows, _ = extract_all(screened.accepted)
    (s1,) = [r for r in rows if r.patient == IG["patient"]["id"]]
    assert s1.to_json()["variables"] == {"ageAtBiopsy": 54, "pcaFamilyHistory": 1, "typeOfBiopsy": 2, "psa": 5.0, "dre": 1, "prostateVolume": 30.0, "pirads": 3}
