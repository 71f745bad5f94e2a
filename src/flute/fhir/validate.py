"""The rule engine: validates plain FHIR JSON dicts against the declared profiles (NF-PIL-3).

profiles.py declares the rules; this module compiles each declaration once, at import, into
a closure over precomputed paths, messages and code sets, so validating a resource is a few
dict lookups per rule (no FHIR object model in the hot path: the hub must ingest tens of
thousands of resources per second).

A check appends findings to a list; they become Issues whose message says what is wrong,
where, why and how to fix it, e.g.
"Observation/psa-1: Observation.valueQuantity.code 'mg/L' is not a known PSA unit; use ng/mL,
ug/L or ng/dL (rule psa.unit)".

Beyond the elements the study uses, base FHIR structure is not validated (no offline HL7
validator exists here); unknown elements are ignored.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import AbstractSet, Any, Callable, Final, Iterable, Mapping

from flute.fhir import profiles as p
from flute.fhir.issues import Issue, Severity
from flute.fhir.references import ID_PATTERN, SUBJECT_ELEMENT, parse_reference
from flute.fhir.terminology import IG_CANONICAL, IG_LEGACY_CANONICAL, UCUM
from flute.fhir.units import has_at_most_one_decimal, is_number, quantity_unit

ERROR: Final = Severity.ERROR
WARNING: Final = Severity.WARNING
INFORMATION: Final = Severity.INFORMATION

#: (rule, FHIR issue-type code, severity, FHIRPath of the element, text)
Finding = tuple[str, str, Severity, str | None, str]
Findings = list[Finding]
Check = Callable[[dict[str, Any], Findings], None]

_DATE_TIME: Final = re.compile(
    r"\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01])"
    r"(T([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d{1,9})?(Z|[+-]((0\d|1[0-3]):[0-5]\d|14:00)))?)?)?"
)

#: The profile (or base type) a message names when saying why an element is required.
_STRUCTURE_SOURCE: Final = "FHIR R4"


def _show(value: object) -> str:
    """A short rendering of an offending value for messages."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {_show(value)}"
    if isinstance(value, str):
        return f"the string {_show(value)}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null" if value is None else type(value).__name__


_KIND_TEST: Final[Mapping[p.Kind, Callable[[object], bool]]] = {
    p.Kind.OBJECT: lambda v: isinstance(v, dict),
    p.Kind.STRING: lambda v: isinstance(v, str) and v.strip() != "",
    p.Kind.INTEGER: lambda v: isinstance(v, int) and not isinstance(v, bool),
}


def _navigator(keys: tuple[str, ...]) -> Callable[[dict[str, Any]], list[dict[str, Any]]]:
    """The objects found along `keys` (FHIRPath-style: arrays are flattened, non-objects skipped)."""

    def navigate(resource: dict[str, Any]) -> list[dict[str, Any]]:
        current = [resource]
        for key in keys:
            found: list[dict[str, Any]] = []
            for node in current:
                value = node.get(key)
                if isinstance(value, dict):
                    found.append(value)
                elif isinstance(value, list):
                    found.extend(v for v in value if isinstance(v, dict))
            current = found
        return current

    return navigate


def _collector(
    rule: str, path: str, shape: p.Shape, resource_type: str, source: str
) -> Callable[[dict[str, Any], Findings], list[Any]]:
    """Values of `path` that have the declared shape; findings for those that do not and for
    a broken cardinality."""
    *parent_keys, key = path.split(".")
    parents = _navigator(tuple(parent_keys)) if parent_keys else None
    full = f"{resource_type}.{path}"
    kind_ok = _KIND_TEST[shape.kind]
    repeats, minimum, maximum = shape.repeats, shape.min, shape.max
    wrong_kind = f"{full} must be {shape.kind.value}, got "
    single_got_array = f"{full} is a single element in FHIR R4 JSON, got an array; send one value, not a list"
    array_got_single = f"{full} repeats in FHIR R4 JSON and must be an array, got "
    missing = f"{full} is missing; {source} requires it ({shape.cardinality}): add it"
    too_many = f"{full} has {{n}} values; {source} allows at most {maximum}: keep only the relevant one"

    root = parent_keys[0] if parent_keys else key
    single_top_level = parents is None and not repeats and maximum != 0
    optional = minimum == 0

    def collect(resource: dict[str, Any], out: Findings) -> list[Any]:
        # The common cases first, without the general loops.
        value = resource.get(root)
        if value is None and optional:  # absent and not required: nothing to collect or report
            return []
        if single_top_level and kind_ok(value):  # (no kind admits None or an array)
            return [value]
        items: list[Any] = []
        malformed = False
        for parent in parents(resource) if parents is not None else (resource,):
            value = parent.get(key)
            if value is None:
                continue
            if isinstance(value, list):
                if not repeats:
                    out.append((rule, "structure", ERROR, full, single_got_array))
                    malformed = True
                    continue
                values = value
            else:
                if repeats:
                    out.append((rule, "structure", ERROR, full, array_got_single + _json_type(value)))
                    malformed = True
                    continue
                values = (value,)
            for item in values:
                if kind_ok(item):
                    items.append(item)
                else:
                    out.append((rule, "structure", ERROR, full, wrong_kind + _json_type(item)))
                    malformed = True
        if len(items) < minimum and not malformed:
            out.append((rule, "required", ERROR, full, missing))
        elif maximum is not None and len(items) > maximum:
            out.append((rule, "structure", ERROR, full, too_many.format(n=len(items))))
        return items

    return collect


def _coding_keys(concept: dict[str, Any], rule: str, full: str, out: Findings | None) -> set[tuple[str, str]]:
    """(system, code) pairs of a CodeableConcept; malformed codings are reported when `out` is given."""
    coding = concept.get("coding")
    if coding is None:
        return set()
    if not isinstance(coding, list):
        if out is not None:
            out.append((rule, "structure", ERROR, f"{full}.coding", f"{full}.coding must be an array of Coding, got {_json_type(coding)}"))
        return set()
    keys = set()
    for item in coding:
        if isinstance(item, dict):
            system, code = item.get("system"), item.get("code")
            if isinstance(system, str) and isinstance(code, str):
                keys.add((system, code))
                continue
            if (system is None or isinstance(system, str)) and (code is None or isinstance(code, str)):
                continue  # an incomplete Coding matches nothing; the rule says what is expected
        if out is not None:
            out.append((rule, "structure", ERROR, f"{full}.coding", f"{full}.coding holds {_show(item)}; a Coding is an object with string 'system' and 'code'"))
    return keys


def _found(keys: set[tuple[str, str]]) -> str:
    return ", ".join(sorted(f"{s}|{c}" for s, c in keys)) or "no coding"


def _compile_rule(rule: p.Rule, resource_type: str, source: str) -> Check:
    """One declared rule as a closure `check(resource, findings)`."""
    if isinstance(rule, p.OneOf):
        return _compile_one_of(rule, resource_type, source)
    collect = _collector(rule.rule, rule.path, rule.shape, resource_type, source)
    full = f"{resource_type}.{rule.path}"
    rule_id = rule.rule

    if isinstance(rule, p.Present):
        def check_present(resource: dict[str, Any], out: Findings) -> None:
            collect(resource, out)
        return check_present

    if isinstance(rule, p.FixedCoding):
        wanted = rule.coding.key
        expected = f"{full} must carry the coding {rule.coding.system}|{rule.coding.code} ({rule.coding.display}) that {source} fixes; found "

        def check_fixed(resource: dict[str, Any], out: Findings) -> None:
            for concept in collect(resource, out):
                keys = _coding_keys(concept, rule_id, full, out)
                if wanted not in keys:
                    out.append((rule_id, "value", ERROR, full, expected + _found(keys)))
        return check_fixed

    if isinstance(rule, p.InValueSet):
        allowed = rule.value_set.keys
        advice = f"; use {rule.value_set.describe()}"
        not_in = f"{full} has no code from {rule.value_set.name} ({{found}}){advice}"

        def check_bound(resource: dict[str, Any], out: Findings) -> None:
            for concept in collect(resource, out):
                keys = _coding_keys(concept, rule_id, full, out)
                if not keys & allowed:
                    out.append((rule_id, "code-invalid", ERROR, full, not_in.format(found=_found(keys))))
        return check_bound

    if isinstance(rule, p.InCodes):
        codes = rule.codes
        advice = f" code; use one of {', '.join(sorted(codes))}"

        def check_codes(resource: dict[str, Any], out: Findings) -> None:
            for value in collect(resource, out):
                if value not in codes:
                    out.append((rule_id, "code-invalid", ERROR, full, f"{full} {_show(value)} is not a {rule.what}{advice}"))
        return check_codes

    if isinstance(rule, p.PatientReference):
        return _compile_patient_reference(rule_id, full, collect, source)
    if isinstance(rule, p.QuantityValue):
        return _compile_quantity(rule, full, collect)
    if isinstance(rule, p.IntegerRange):
        low, high = rule.minimum, rule.maximum
        out_of_range = f"{full} must be between {low} and {high}, got "

        def check_range(resource: dict[str, Any], out: Findings) -> None:
            for value in collect(resource, out):
                if not low <= value <= high:
                    out.append((rule_id, "value", ERROR, full, out_of_range + str(value)))
        return check_range

    if isinstance(rule, p.DateTime):
        bad_date = "is not a FHIR date/dateTime; use YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss with a time zone"

        def check_date(resource: dict[str, Any], out: Findings) -> None:
            for value in collect(resource, out):
                if not is_fhir_date_time(value):
                    out.append((rule_id, "value", ERROR, full, f"{full} {_show(value)} {bad_date}"))
        return check_date

    raise TypeError(f"no compiler for rule {rule!r}")


@lru_cache(maxsize=4096)
def is_fhir_date_time(value: str) -> bool:
    """A syntactically valid FHIR date/dateTime naming a real calendar day. Memoised: dates
    recur across a patient's records and across patients, and the regular expression and the
    calendar check cost more than the lookup."""
    if _DATE_TIME.fullmatch(value) is None:
        return False
    if len(value) >= 10:
        try:
            date.fromisoformat(value[:10])
        except ValueError:
            return False
    return True


def _compile_one_of(rule: p.OneOf, resource_type: str, source: str) -> Check:
    choices = rule.choices
    names = " / ".join(choices)
    several = f"{resource_type}.{{found}}: a choice element takes one type; send only one of {names}"
    missing = f"{resource_type} has none of {names}; {source} needs one of them: add it"
    path = f"{resource_type}.{rule.choices[0]}"

    def check_one_of(resource: dict[str, Any], out: Findings) -> None:
        present = [c for c in choices if c in resource]
        if len(present) > 1:
            out.append((rule.rule, "structure", ERROR, path, several.format(found=" and ".join(present))))
        elif len(present) < rule.min:
            out.append((rule.rule, "required", ERROR, path, missing))

    return check_one_of


def _compile_patient_reference(
    rule_id: str, full: str, collect: Callable[[dict[str, Any], Findings], list[Any]], source: str
) -> Check:
    missing = f"{full}.reference is missing; {source} links it to a Patient: give 'Patient/<id>'"

    def check_reference(resource: dict[str, Any], out: Findings) -> None:
        for target in collect(resource, out):
            reference = target.get("reference")
            if reference is None:
                out.append((rule_id, "required", ERROR, f"{full}.reference", missing))
                continue
            parsed = parse_reference(reference)
            if parsed is None:
                hint = (
                    "a urn:uuid reference resolves only inside its Bundle (send the Patient in the same Bundle)"
                    if isinstance(reference, str) and reference.startswith("urn:")
                    else "use a literal reference 'Patient/<id>'"
                )
                out.append((rule_id, "value", ERROR, f"{full}.reference", f"{full}.reference {_show(reference)} cannot be resolved: {hint}"))
            elif parsed[0] != "Patient":
                out.append((rule_id, "value", ERROR, f"{full}.reference", f"{full}.reference points to a {parsed[0]}; {source} requires a Patient"))

    return check_reference


def _compile_quantity(
    rule: p.QuantityValue, full: str, collect: Callable[[dict[str, Any], Findings], list[Any]]
) -> Check:
    prefix, table = rule.prefix, rule.units
    low, high, one_decimal = rule.minimum, rule.maximum, rule.one_decimal
    value_rule, unit_rule, code_rule = f"{prefix}.value", f"{prefix}.unit", f"{prefix}.unit-code"
    decimals_rule, range_rule = f"{prefix}.decimals", f"{prefix}.range"
    accepted = f"use {table.describe()}"
    no_unit = f"{full} has no unit; give code '{table.canonical}' with system {UCUM}"

    def check_quantity(resource: dict[str, Any], out: Findings) -> None:
        for quantity in collect(resource, out):
            value = quantity.get("value")
            if not is_number(value):
                code = "required" if value is None else "structure"
                got = "it is missing" if value is None else f"got {_json_type(value)}"
                out.append((value_rule, code, ERROR, f"{full}.value", f"{full}.value must be a JSON number ({table.variable} in {table.canonical}); {got}"))
            code, system = quantity.get("code"), quantity.get("system")
            if code is not None and not isinstance(code, str):
                out.append((unit_rule, "structure", ERROR, f"{full}.code", f"{full}.code must be a UCUM code string, got {_json_type(code)}; {accepted}"))
                continue
            unit = quantity_unit(quantity)
            code_given = code is not None
            if unit is None:
                out.append((unit_rule, "required", ERROR, f"{full}.code", no_unit))
                continue
            if not table.accepts(unit):
                out.append((unit_rule, "code-invalid", ERROR, f"{full}.code", f"{full}.code {_show(unit)} is not a known {table.variable} unit; {accepted}"))
                continue
            if code_given and system != UCUM:
                out.append((unit_rule, "code-invalid", ERROR, f"{full}.system", f"{full}.system {_show(system)} is not UCUM; a unit code needs system {UCUM}"))
                continue
            if not code_given:
                out.append((code_rule, "incomplete", WARNING, f"{full}.code", f"{full} gives only the unit text {_show(unit)}; add its UCUM code (e.g. '{table.canonical}') and system {UCUM}"))
            if not is_number(value):
                continue
            if not low <= table.convert(value, unit) <= high:
                out.append((range_rule, "value", ERROR, f"{full}.value", f"{full}.value {_show(value)} {unit} is outside the plausible {table.variable} range {low:g}..{high:g} {table.canonical}; check the value and its unit"))
            elif one_decimal and not has_at_most_one_decimal(value):
                out.append((decimals_rule, "value", WARNING, f"{full}.value", f"{full}.value {_show(value)} has more than one decimal (IG invariant rule-1); it is stored rounded to {table.harmonise(value, unit)} {table.canonical}"))

    return check_quantity


@dataclass(frozen=True)
class _CompiledProfile:
    profile: p.Profile
    checks: tuple[Check, ...]


def _compile_profile(profile: p.Profile) -> _CompiledProfile:
    return _CompiledProfile(profile, tuple(_compile_rule(r, profile.resource_type, profile.name) for r in profile.rules))


_COMPILED: Final[tuple[_CompiledProfile, ...]] = tuple(_compile_profile(pr) for pr in p.PROFILES)
_BASE_CHECKS: Final[Mapping[str, tuple[Check, ...]]] = {
    rtype: tuple(_compile_rule(r, rtype, f"{_STRUCTURE_SOURCE} {rtype}") for r in rules)
    for rtype, rules in p.BASE_RULES.items()
}
_BY_URL: Final[Mapping[str, _CompiledProfile]] = {
    url: cp
    for cp in _COMPILED
    for url in (cp.profile.url, f"{IG_LEGACY_CANONICAL}/StructureDefinition/{cp.profile.name}")
}
_FLUTE_PROFILE_BASES: Final = (f"{IG_CANONICAL}/StructureDefinition/", f"{IG_LEGACY_CANONICAL}/StructureDefinition/")


def _recognisers() -> Mapping[str, tuple[tuple[Callable[[dict[str, Any]], list[dict[str, Any]]], Mapping[tuple[str, str], tuple[_CompiledProfile, ...]]], ...]]:
    """Per resource type: (CodeableConcept finder, coding -> profiles) pairs, one per path."""
    by_type: dict[str, dict[str, dict[tuple[str, str], list[_CompiledProfile]]]] = {}
    for cp in _COMPILED:
        matcher = cp.profile.recognised_by
        if matcher is None:
            continue
        keys = matcher.value_set.keys if isinstance(matcher, p.InValueSet) else frozenset({matcher.coding.key})
        table = by_type.setdefault(cp.profile.resource_type, {}).setdefault(matcher.path, {})
        for key in keys:
            table.setdefault(key, []).append(cp)
    return {
        rtype: tuple((_navigator(tuple(path.split("."))), {k: tuple(v) for k, v in table.items()}) for path, table in paths.items())
        for rtype, paths in by_type.items()
    }


_RECOGNISERS: Final = _recognisers()
_TYPE_WIDE: Final[Mapping[str, tuple[_CompiledProfile, ...]]] = {
    rtype: tuple(cp for cp in _COMPILED if cp.profile.resource_type == rtype and cp.profile.recognised_by is None)
    for rtype in p.BASE_RULES
}


def _claimed_profiles(resource: dict[str, Any], resource_type: str, out: Findings) -> list[_CompiledProfile] | None:
    """Known FLUTE profiles of this type named in meta.profile; None when it names none
    (the resource is then recognised by content)."""
    meta = resource.get("meta")
    if meta is None:
        return None
    claimed = meta.get("profile") if isinstance(meta, dict) else None
    if claimed is None:
        if not isinstance(meta, dict):
            out.append(("resource.profile", "structure", ERROR, f"{resource_type}.meta", f"{resource_type}.meta must be an object, got {_json_type(meta)}"))
        return None
    if not isinstance(claimed, list):
        out.append(("resource.profile", "structure", ERROR, f"{resource_type}.meta.profile", f"{resource_type}.meta.profile must be an array of canonical URLs, got {_json_type(claimed)}"))
        return None
    selected: list[_CompiledProfile] = []
    for url in claimed:
        if not isinstance(url, str):
            out.append(("resource.profile", "structure", ERROR, f"{resource_type}.meta.profile", f"{resource_type}.meta.profile holds {_json_type(url)}; profiles are canonical URL strings"))
            continue
        canonical = url.split("|", 1)[0]
        cp = _BY_URL.get(canonical)
        if cp is None:
            if canonical.startswith(_FLUTE_PROFILE_BASES):
                known = ", ".join(pr.name for pr in p.PROFILES if pr.name != "Patient")
                out.append(("resource.profile", "not-supported", WARNING, f"{resource_type}.meta.profile", f"{resource_type}.meta.profile names {_show(url)}, which is not a FLUTE profile; known: {known}"))
            continue
        if cp.profile.resource_type != resource_type:
            out.append(("resource.profile", "invalid", ERROR, f"{resource_type}.meta.profile", f"{resource_type}.meta.profile names {cp.profile.name}, a profile of {cp.profile.resource_type}; fix the resourceType or the profile"))
        elif cp not in selected:
            selected.append(cp)
    return selected or None


def _recognised_profiles(resource: dict[str, Any], resource_type: str) -> list[_CompiledProfile]:
    found: list[_CompiledProfile] = list(_TYPE_WIDE.get(resource_type, ()))
    for finder, table in _RECOGNISERS.get(resource_type, ()):
        for concept in finder(resource):
            for key in _coding_keys(concept, "", "", None):
                for cp in table.get(key, ()):
                    if cp not in found:
                        found.append(cp)
    return found


def _findings(resource: dict[str, Any], resource_type: str) -> Findings:
    out: Findings = []
    resource_id = resource.get("id")
    if resource_id is None:
        out.append(("resource.id", "required", ERROR, f"{resource_type}.id", f"{resource_type}.id is missing; FLUTE needs an id to link references and to re-import idempotently: give one"))
    elif not isinstance(resource_id, str) or ID_PATTERN.fullmatch(resource_id) is None:
        out.append(("resource.id", "value", ERROR, f"{resource_type}.id", f"{resource_type}.id {_show(resource_id)} is not a FHIR id (1-64 of A-Z a-z 0-9 - .)"))
    base = _BASE_CHECKS.get(resource_type)
    if base is None:
        out.append(("resource.unsupported", "not-supported", INFORMATION, None, f"{resource_type} is not part of the FLUTE model; it is kept but not used for study variables"))
        return out
    for check in base:
        check(resource, out)
    profiles = _claimed_profiles(resource, resource_type, out)
    if profiles is None:
        profiles = _recognised_profiles(resource, resource_type)
    for cp in profiles:
        for check in cp.checks:
            check(resource, out)
    if not profiles:
        out.append(("profile.unmatched", "informational", INFORMATION, None, f"{resource_type} matches no FLUTE profile (by meta.profile or code); it is kept but not used for study variables"))
    return out


def validate_resource(resource: dict[str, Any], location: str | None = None) -> list[Issue]:
    """Every finding about one resource (empty when it conforms). Never raises."""
    if not isinstance(resource, dict):
        return [Issue(ERROR, "resource.type", f"a resource must be a JSON object, got {_json_type(resource)} (rule resource.type)", location=location, code="structure")]
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or not resource_type:
        return [Issue(ERROR, "resource.type", f"resourceType is missing or not a string ({_show(resource_type)}); every FHIR resource names its type (rule resource.type)", path="resourceType", location=location, code="required")]
    out = _findings(resource, resource_type)
    if not out:
        return []
    resource_id = resource.get("id")
    resource_id = resource_id if isinstance(resource_id, str) else None
    prefix = f"{resource_type}/{resource_id or '?'}: "
    return [
        Issue(severity, rule, f"{prefix}{text} (rule {rule})", resource_type, resource_id, path, location, code)
        for rule, code, severity, path, text in out
    ]


def check_references(
    resources: Iterable[dict[str, Any]],
    known_ids: Callable[[str, str], bool] | AbstractSet[tuple[str, str]],
) -> list[Issue]:
    """Cross-resource checks: duplicate (type, id) within `resources` and subject/patient
    references to a Patient that is neither among `resources` nor known (`known_ids`, e.g.
    the hub store)."""
    batch = [r for r in resources if isinstance(r, dict)]
    known: Callable[[str, str], bool] = known_ids if callable(known_ids) else (lambda rt, rid: (rt, rid) in known_ids)
    issues: list[Issue] = []
    counts: Counter[tuple[str, str]] = Counter()
    for resource in batch:
        rtype, rid = resource.get("resourceType"), resource.get("id")
        if isinstance(rtype, str) and isinstance(rid, str):
            counts[(rtype, rid)] += 1
            if counts[(rtype, rid)] == 2:
                issues.append(Issue(ERROR, "resource.duplicate", f"{rtype}/{rid}: the id occurs more than once in this input; each resource needs its own id (rule resource.duplicate)", rtype, rid, f"{rtype}.id", code="duplicate"))
    for resource in batch:
        rtype = resource.get("resourceType")
        element = SUBJECT_ELEMENT.get(rtype) if isinstance(rtype, str) else None
        target = resource.get(element) if element else None
        parsed = parse_reference(target.get("reference")) if isinstance(target, dict) else None
        if parsed is None or parsed in counts or known(*parsed):
            continue
        rid = resource.get("id")
        rid = rid if isinstance(rid, str) else None
        issues.append(Issue(ERROR, "reference.dangling", f"{rtype}/{rid or '?'}: {rtype}.{element}.reference '{target['reference']}' names a {parsed[0]} that is neither in this input nor already stored; import the {parsed[0]} first or fix the reference (rule reference.dangling)", rtype, rid, f"{rtype}.{element}.reference", code="not-found"))
    return issues


def blocks_import(issues: Iterable[Issue]) -> bool:
    """True when any issue is an error (or fatal): the resource must not be imported."""
    return any(i.severity.blocks_import for i in issues)


def operation_outcome(issues: Iterable[Issue]) -> dict[str, Any]:
    """The issues as a FHIR R4 OperationOutcome (an `information` "all OK" issue when empty,
    since OperationOutcome.issue is 1..*)."""
    entries = []
    for issue in issues:
        entry: dict[str, Any] = {
            "severity": issue.severity.value,
            "code": issue.code or "invalid",
            "diagnostics": issue.message,
            "details": {"coding": [{"system": RULE_SYSTEM, "code": issue.rule}]},
        }
        if issue.resource_type:
            entry["details"]["text"] = f"{issue.resource_type}/{issue.resource_id or '?'}"
        if issue.path:
            entry["expression"] = [issue.path]
        if issue.location:
            entry["location"] = [issue.location]
        entries.append(entry)
    if not entries:
        entries.append({"severity": "information", "code": "informational", "diagnostics": "No issues found"})
    return {"resourceType": "OperationOutcome", "issue": entries}


#: Identifies FLUTE's validation rule ids in OperationOutcome.issue.details.coding.
RULE_SYSTEM: Final = "urn:flute:validation-rule"


def all_rule_ids() -> tuple[str, ...]:
    """Every rule id the engine can raise from declared rules (for docs and tests)."""
    ids = {"resource.type", "resource.id", "resource.profile", "resource.unsupported", "profile.unmatched",
           "resource.duplicate", "reference.dangling"}
    for rules in p.BASE_RULES.values():
        ids.update(i for r in rules for i in p.rule_ids(r))
    for profile in p.PROFILES:
        ids.update(i for r in profile.rules for i in p.rule_ids(r))
    return tuple(sorted(ids))


def matched_profiles(resource: dict[str, Any]) -> tuple[str, ...]:
    """Keys of the profiles a resource is validated against (profiles.py explains the
    matching); extraction uses the same answer, so both agree on what a resource is."""
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or resource_type not in _BASE_CHECKS:
        return ()
    profiles = _claimed_profiles(resource, resource_type, [])
    if profiles is None:
        profiles = _recognised_profiles(resource, resource_type)
    return tuple([cp.profile.key for cp in profiles])
