"""What every FHIR reader yields (Bundle files, Bulk NDJSON, tabular extracts, a FHIR REST
server): import units, so the hub's ingest pipeline has one input shape (F-HUF-19, F-PIL-5).

A unit is the grain of atomicity: a transaction Bundle is one atomic unit (all-or-nothing);
a batch/collection/searchset Bundle entry or an NDJSON line is a unit of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flute.fhir.issues import Issue


@dataclass(frozen=True)
class SourceEntry:
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


@dataclass(frozen=True)
class ImportUnit:
    """Entries imported together: all-or-nothing when `atomic` (FHIR transaction semantics)."""

    source: str
    atomic: bool
    entries: tuple[SourceEntry, ...] = field(default=())
