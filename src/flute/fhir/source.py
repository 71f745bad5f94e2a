"""What every FHIR reader yields (Bundle files, Bulk NDJSON, tabular extracts, a FHIR REST
server): import units, so the hub's ingest pipeline has one input shape (F-HUF-19, F-PIL-5).

A unit is the grain of atomicity: a transaction Bundle is one atomic unit (all-or-nothing);
a batch/collection/searchset Bundle entry or an NDJSON line is a unit of its own.

Both records are named tuples (immutable, like the prepared records of `flute.hub.prepare`):
readers build one unit and one entry per resource, and a named tuple is built several times
faster than a frozen dataclass.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from flute.fhir.issues import Issue


class SourceEntry(NamedTuple):
    """One resource as read, or the reason it could not be read.

    `raw` keeps the original bytes so a rejected record is quarantined exactly as received
    and content hashes are computed over what arrived. `method` and `url` are the Bundle
    entry's request method (PUT/POST/DELETE) and URL when the source carries one (a DELETE
    entry has no resource: `url` names its target, e.g. "Observation/psa-1").
    """

    location: str
    raw: bytes
    resource: dict[str, Any] | None
    error: Issue | None = None
    method: str | None = None
    url: str | None = None


class ImportUnit(NamedTuple):
    """Entries imported together: all-or-nothing when `atomic` (FHIR transaction semantics)."""

    source: str
    atomic: bool
    entries: tuple[SourceEntry, ...] = ()
