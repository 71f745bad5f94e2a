"""Screening of read input: which resources may be used, and every issue found (NF-PIL-3).

Combines the readers' errors, per-resource validation and the cross-resource reference
checks, and applies transaction atomicity: when one entry of a transaction Bundle is
rejected, the whole Bundle is (FHIR transaction semantics). Used by `flute fhir validate` and
`flute fhir extract`; Bundle DELETE entries are not data and are not applied here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import AbstractSet, Any, Callable, Iterable

from flute.fhir.issues import Issue, Severity
from flute.fhir.source import ImportUnit, SourceEntry
from flute.fhir.validate import blocks_import, check_references, validate_resource


@dataclass(frozen=True)
class Screened:
    """Resources fit for use (input order), the issues, and how many records were rejected."""

    accepted: list[dict[str, Any]]
    issues: list[Issue]
    read: int
    rejected: int

    @property
    def has_errors(self) -> bool:
        return blocks_import(self.issues)


def screen(
    units: Iterable[ImportUnit],
    known_ids: Callable[[str, str], bool] | AbstractSet[tuple[str, str]] = frozenset(),
) -> Screened:
    """Validate every unit's entries, check references across all of them, apply atomicity."""
    issues: list[Issue] = []
    kept: list[tuple[ImportUnit, list[SourceEntry]]] = []
    read = rejected = 0
    for unit in units:
        valid: list[SourceEntry] = []
        failed = 0
        for entry in unit.entries:
            if entry.method == "DELETE" and entry.error is None:
                continue
            read += 1
            if entry.error is not None or entry.resource is None:
                if entry.error is not None:
                    issues.append(entry.error)
                failed += 1
                continue
            found = validate_resource(entry.resource, entry.location)
            issues.extend(found)
            if blocks_import(found):
                failed += 1
            else:
                valid.append(entry)
        if unit.atomic and failed:
            if valid:
                issues.append(_rolled_back(unit, len(valid)))
            rejected += failed + len(valid)
            continue
        rejected += failed
        kept.append((unit, valid))
    candidates = [entry for _, entries in kept for entry in entries]
    reference_issues = check_references((e.resource for e in candidates if e.resource is not None), known_ids)
    issues.extend(reference_issues)
    broken = {(i.resource_type, i.resource_id) for i in reference_issues if i.severity.blocks_import}
    accepted: list[dict[str, Any]] = []
    for unit, entries in kept:
        bad = {id(e) for e in entries if e.resource is not None and (e.resource.get("resourceType"), e.resource.get("id")) in broken}
        if unit.atomic and bad:
            issues.append(_rolled_back(unit, len(entries) - len(bad)))
            rejected += len(entries)
            continue
        rejected += len(bad)
        accepted.extend(e.resource for e in entries if e.resource is not None and id(e) not in bad)
    return Screened(accepted, issues, read, rejected)


def _rolled_back(unit: ImportUnit, innocent: int) -> Issue:
    return Issue(
        Severity.ERROR,
        "transaction.rejected",
        f"{unit.source}: the transaction Bundle is all-or-nothing, so its {innocent} valid entries are rejected with the failing ones; fix those and resend the Bundle (rule transaction.rejected)",
        location=unit.source,
        code="processing",
    )
