"""The store-independent half of ingest (F-PIL-5, NF-PIL-3): everything about an entry that does
not depend on what the hub already holds - its IG validation, its type, id and subject, a
Patient's pseudonym from its identifiers, its canonical body and content hash, its version
metadata - computed once, into a small picklable record.

Why a separate step: it is about a third of an import's CPU and needs nothing from the database,
so `flute.hub.pipeline` can run it in a second process while the importing process only decides
against the store and writes. The records hold plain values (no parsed resource), so passing
them between processes costs little.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import orjson

from flute.fhir.issues import Issue, Severity
from flute.fhir.references import subject_id
from flute.fhir.source import ImportUnit, SourceEntry
from flute.fhir.validate import validate_resource
from flute.hub.pseudonym import Pseudonymizer

RULE_UNREADABLE = "import.unreadable"
RULE_DELETE = "import.delete-unsupported"
RULE_ID_REQUIRED = "import.id-required"


class PreparedEntry(NamedTuple):
    """One entry as the importer needs it. `type_field`/`id_field` are the resource's
    resourceType/id when they are strings (for messages and the quarantine); `resource_id` is the
    id the hub stores it under (None when empty). `issues` are the store-independent reasons to
    reject it (unreadable, a DELETE, IG validation errors, no id); `body` and `content_hash` are
    set only when there are none."""

    location: str
    raw: bytes
    type_field: str | None
    id_field: str | None
    subject: str | None
    identity_pseudonym: str | None
    issues: tuple[Issue, ...]
    body: str | None
    content_hash: str | None
    version_id: str | None
    last_updated: str | None

    @property
    def resource_type(self) -> str | None:
        return self.type_field

    @property
    def resource_id(self) -> str | None:
        return self.id_field or None

    def resource(self) -> dict[str, Any]:
        """The resource, re-read from its canonical body (only for the rare paths that need it)."""
        assert self.body is not None, "only an entry without blocking issues has a body"
        resource: dict[str, Any] = orjson.loads(self.body)
        return resource


class PreparedUnit(NamedTuple):
    """An ImportUnit of prepared entries (same atomicity)."""

    source: str
    atomic: bool
    entries: tuple[PreparedEntry, ...]


def canonical_json(resource: dict[str, Any]) -> bytes:
    """The stored form of a resource: sorted keys, compact, so equal content hashes equally."""
    return orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)


def rejection(rule: str, code: str, message: str, location: str, type_field: str | None, id_field: str | None) -> Issue:
    """An import-level error about one entry."""
    return Issue(severity=Severity.ERROR, rule=rule, message=message, resource_type=type_field, resource_id=id_field, location=location, code=code)


def prepare_units(units: Iterable[ImportUnit], pseudonymizer: Pseudonymizer) -> Iterator[PreparedUnit]:
    for unit in units:
        entries = unit.entries
        if len(entries) == 1:  # an NDJSON line or a batch entry: the common case, without a generator
            prepared: tuple[PreparedEntry, ...] = (prepare_entry(entries[0], pseudonymizer),)
        else:
            prepared = tuple(prepare_entry(entry, pseudonymizer) for entry in entries)
        yield PreparedUnit(unit.source, unit.atomic, prepared)


def prepare_entry(entry: SourceEntry, pseudonymizer: Pseudonymizer) -> PreparedEntry:
    resource = entry.resource
    if resource is None:
        issue = entry.error or rejection(RULE_UNREADABLE, "structure", "entry holds no resource", entry.location, None, None)
        if entry.method and entry.method.upper() == "DELETE" and entry.error is None:
            issue = rejection(
                RULE_DELETE,
                "not-supported",
                f"DELETE {entry.url or ''} is not applied by import; to remove a patient's data use `flute hub withdraw PSEUDONYM`",
                entry.location, None, None,
            )
        return PreparedEntry(entry.location, entry.raw, None, None, None, None, (issue,), None, None, None, None)
    type_field, id_field = resource.get("resourceType"), resource.get("id")
    type_field = type_field if isinstance(type_field, str) else None
    id_field = id_field if isinstance(id_field, str) else None
    subject = subject_id(resource)
    # A Patient's pseudonym from its identifiers; a Patient already stored keeps its own.
    identity = pseudonymizer.for_patient(resource) if type_field == "Patient" and id_field else None
    findings = validate_resource(resource, entry.location)
    blocking = tuple(i for i in findings if i.severity.blocks_import) if findings else ()
    if not blocking and (type_field is None or not id_field):
        blocking = (rejection(RULE_ID_REQUIRED, "required", "the hub stores resources by type and id; give this resource an id", entry.location, type_field, id_field),)
    if blocking:
        return PreparedEntry(entry.location, entry.raw, type_field, id_field, subject, identity, blocking, None, None, None, None)
    body = canonical_json(resource)
    version_id, last_updated = _version_meta(resource)
    return PreparedEntry(
        entry.location, entry.raw, type_field, id_field, subject, identity, (), body.decode("utf-8"),
        hashlib.sha256(body).hexdigest(), version_id, last_updated,
    )


def _version_meta(resource: dict[str, Any]) -> tuple[str | None, str | None]:
    """meta.versionId and meta.lastUpdated, each None unless a string."""
    meta = resource.get("meta")
    if not isinstance(meta, dict):
        return None, None
    version_id, last_updated = meta.get("versionId"), meta.get("lastUpdated")
    return (version_id if isinstance(version_id, str) else None, last_updated if isinstance(last_updated, str) else None)
