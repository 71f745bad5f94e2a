"""Reading FHIR references and ids: which patient a resource is about.

Accepted reference forms: relative `Patient/123`, absolute `https://host/fhir/Patient/123`,
either with a `/_history/N` suffix. `urn:uuid:` references only mean something inside the
Bundle that carries them; the readers resolve them to `Type/id` (see readers.py), so one
left over here is unresolved.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Final, Mapping

#: FHIR R4 `id` datatype.
ID_PATTERN: Final = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_REFERENCE: Final = re.compile(
    r"(?:[a-z][a-z0-9+.\-]*://[^\s]*?/)?([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?"
)

#: Distinct reference strings remembered by `parse_reference` (~3 MB at most): a patient's
#: resources are read together (one Bulk Data file per type, a Bundle per patient), so all but
#: the first find their subject parsed; an import of up to this many patients also finds them
#: again when it derives their study rows.
PARSED_REFERENCES_CACHED: Final = 1 << 13

#: The element of each resource type that names the patient it is about.
SUBJECT_ELEMENT: Final[Mapping[str, str]] = {
    "Observation": "subject",
    "Procedure": "subject",
    "FamilyMemberHistory": "patient",
}


def parse_reference(reference: object) -> tuple[str, str] | None:
    """`(resourceType, id)` of a literal reference string, or None when it is not one."""
    if not isinstance(reference, str):
        return None
    return _parse_literal(reference)


@lru_cache(maxsize=PARSED_REFERENCES_CACHED)
def _parse_literal(reference: str) -> tuple[str, str] | None:
    """`parse_reference` of a string, memoised: a patient's reference recurs in each of their
    resources and is parsed by validation, by the importer and by extraction, and the regular
    expression costs more than the cache lookup."""
    match = _REFERENCE.fullmatch(reference)
    return (match.group(1), match.group(2)) if match else None


def subject_id(resource: Mapping[str, Any]) -> str | None:
    """The id of the Patient a resource is about (a Patient's own id), or None."""
    resource_type = resource.get("resourceType")
    if resource_type == "Patient":
        own = resource.get("id")
        return own if isinstance(own, str) else None
    element = SUBJECT_ELEMENT.get(resource_type) if isinstance(resource_type, str) else None
    if element is None:
        return None
    target = resource.get(element)
    if not isinstance(target, dict):
        return None
    parsed = parse_reference(target.get("reference"))
    if parsed is None or parsed[0] != "Patient":
        return None
    return parsed[1]


def resource_key(resource: Mapping[str, Any]) -> str:
    """`Type/id` for messages and provenance (`?` for a missing part)."""
    resource_type = resource.get("resourceType")
    resource_id = resource.get("id")
    return f"{resource_type if isinstance(resource_type, str) else '?'}/{resource_id if isinstance(resource_id, str) else '?'}"
