"""Streaming readers: FHIR JSON Bundles, single resources, Bulk Data NDJSON and directories of
them, yielding ImportUnits (F-HUF-19, F-PIL-5: a defined way from hospital exports into a hub).

Units and atomicity: a `transaction` Bundle is one atomic unit (all or nothing, FHIR
transaction semantics); every entry of any other Bundle type (batch, collection, searchset,
...) and every NDJSON line is a unit of its own, so one bad record never blocks the others.

Bad input never raises: unreadable files, malformed JSON, non-objects, a missing
resourceType, oversized records and malformed Bundle entries each become a SourceEntry with
an `error` Issue (rule ids `reader.*`), so the hub can quarantine them with their bytes.

Memory: NDJSON streams line by line, and a line longer than the per-resource limit is skipped
without being held (only its first KiB is kept as evidence). A JSON file is parsed whole:
a transaction must be held entirely before any entry is stored anyway, streaming a huge
batch/collection Bundle would need an incremental JSON parser (none is installed, and one in
pure Python would be many times slower than orjson), and large exports are what FHIR Bulk
Data's NDJSON is for. A JSON file above `max_file_bytes` is therefore refused with an Issue
that says to export NDJSON instead.

References inside a Bundle: an entry's `fullUrl` (e.g. `urn:uuid:...`) is resolved to the
entry's `Type/id` in every `reference` of the Bundle, as a FHIR server does when it processes
a transaction; an entry without id whose fullUrl is `urn:uuid:X` gets the id X. `raw` keeps
the entry's resource as received (compactly re-serialised: byte-exact slices of a Bundle need
an incremental parser), before that resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, Iterable, Iterator

import orjson

from flute.fhir.issues import Issue, Severity
from flute.fhir.references import ID_PATTERN, parse_reference
from flute.fhir.source import ImportUnit, SourceEntry

DEFAULT_MAX_RESOURCE_BYTES: Final = 1 << 20  # 1 MiB: far above any resource of this model
DEFAULT_MAX_FILE_BYTES: Final = 256 << 20  # a single JSON document held in memory
NDJSON_SUFFIXES: Final = (".ndjson", ".jsonl")
JSON_SUFFIXES: Final = (".json",)
_EVIDENCE_BYTES: Final = 1024
_BUNDLE_TYPES: Final = frozenset(
    {"document", "message", "transaction", "transaction-response", "batch", "batch-response", "history", "searchset", "collection"}
)
_IMPORT_METHODS: Final = frozenset({"POST", "PUT", "DELETE"})


@dataclass(frozen=True)
class ReadLimits:
    """Size guards against runaway input (a resource of this model is a few KiB)."""

    max_resource_bytes: int = DEFAULT_MAX_RESOURCE_BYTES
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES


def iter_units(paths: Iterable[Path], limits: ReadLimits = ReadLimits()) -> Iterator[ImportUnit]:
    """Import units from files and directories (directories recurse in sorted path order and
    read only *.json, *.ndjson and *.jsonl files). Never raises for bad input."""
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(JSON_SUFFIXES + NDJSON_SUFFIXES))
            for file in files:
                yield from read_file(file, limits)
        else:
            yield from read_file(path, limits)


def read_file(path: Path, limits: ReadLimits = ReadLimits()) -> Iterator[ImportUnit]:
    """Units of one file: NDJSON by suffix (.ndjson, .jsonl), anything else as one JSON document."""
    source = str(path)
    try:
        if path.name.endswith(NDJSON_SUFFIXES):
            with path.open("rb") as stream:
                yield from _ndjson_units(stream, source, limits)
            return
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            issue = _issue("reader.oversized", f"{source} is {size} bytes, above the {limits.max_file_bytes}-byte limit for one JSON document; export large data as FHIR Bulk Data NDJSON (one resource per line)", source, "too-long")
            yield _failed_unit(source, source, b"", issue)
            return
        data = path.read_bytes()
    except OSError as error:
        issue = _issue("reader.io", f"{source} cannot be read: {error.strerror or error}; check the path and its permissions", source, "exception")
        yield _failed_unit(source, source, b"", issue)
        return
    yield from document_units(data, source, limits)


def document_units(data: bytes, source: str, limits: ReadLimits = ReadLimits()) -> Iterator[ImportUnit]:
    """Units of one JSON document: a Bundle's entries, or a single resource."""
    document, error = _parse(data, source)
    if error is not None:
        yield _failed_unit(source, source, data[:_EVIDENCE_BYTES], error)
        return
    assert document is not None
    if document.get("resourceType") == "Bundle":
        yield from _bundle_units(document, data, source, limits)
        return
    yield ImportUnit(source, atomic=False, entries=(_resource_entry(document, data, source, limits),))


def _ndjson_units(stream: IO[bytes], source: str, limits: ReadLimits) -> Iterator[ImportUnit]:
    limit = limits.max_resource_bytes
    line_number = 0
    while True:
        line = stream.readline(limit + 2)  # room for a CRLF after a record of exactly `limit` bytes
        if not line:
            return
        line_number += 1
        location = f"{source}:{line_number}"
        if len(line) == limit + 2 and not line.endswith(b"\n"):
            size = len(line) + _skip_rest_of_line(stream)
            issue = _issue("reader.oversized", f"{location}: the record is {size} bytes, above the {limit}-byte limit for one resource; split it or raise the limit", location, "too-long")
            yield _failed_unit(source, location, line[:_EVIDENCE_BYTES], issue)
            continue
        record = line.strip()
        if not record:
            continue  # blank lines (e.g. a trailing newline) carry nothing
        document, error = _parse(record, location)
        if error is not None:
            yield _failed_unit(source, location, record, error)
            continue
        assert document is not None
        yield ImportUnit(source, atomic=False, entries=(_resource_entry(document, record, location, limits),))


def _skip_rest_of_line(stream: IO[bytes]) -> int:
    """Consume an oversized line without holding it; the number of bytes skipped."""
    skipped = 0
    while True:
        chunk = stream.readline(1 << 16)
        skipped += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return skipped


def _bundle_units(bundle: dict[str, Any], data: bytes, source: str, limits: ReadLimits) -> Iterator[ImportUnit]:
    bundle_type = bundle.get("type")
    if not isinstance(bundle_type, str) or bundle_type not in _BUNDLE_TYPES:
        issue = _issue("reader.bundle-type", f"{source}: Bundle.type {bundle_type!r} is not a FHIR Bundle type; use transaction, batch, collection or searchset", source, "value", "Bundle.type")
        yield _failed_unit(source, source, data[:_EVIDENCE_BYTES], issue)
        return
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        issue = _issue("reader.entry", f"{source}: Bundle.entry must be an array of entries, got {type(entries).__name__}", source, "structure", "Bundle.entry")
        yield _failed_unit(source, source, data[:_EVIDENCE_BYTES], issue)
        return
    read = [_bundle_entry(entry, f"{source}#entry[{index}]", limits) for index, entry in enumerate(entries)]
    _resolve_bundle_references(entries, read)
    if bundle_type == "transaction":
        if read:
            yield ImportUnit(source, atomic=True, entries=tuple(read))
        return
    for entry in read:
        yield ImportUnit(source, atomic=False, entries=(entry,))


def _bundle_entry(entry: object, location: str, limits: ReadLimits) -> SourceEntry:
    if not isinstance(entry, dict):
        issue = _issue("reader.entry", f"{location}: a Bundle entry must be an object, got {type(entry).__name__}", location, "structure", "Bundle.entry")
        return SourceEntry(location, orjson.dumps(entry), None, issue)
    request = entry.get("request")
    method = request.get("method") if isinstance(request, dict) else None
    url = request.get("url") if isinstance(request, dict) else None
    method = method if isinstance(method, str) else None
    url = url if isinstance(url, str) else None
    if method is not None and method not in _IMPORT_METHODS:
        issue = _issue("reader.request", f"{location}: request method {method!r} cannot import data; use POST, PUT or DELETE", location, "not-supported", "Bundle.entry.request.method")
        return SourceEntry(location, orjson.dumps(entry), None, issue, method, url)
    if method == "DELETE":
        if parse_reference(url) is None:
            issue = _issue("reader.request", f"{location}: DELETE needs request.url 'Type/id', got {url!r}", location, "value", "Bundle.entry.request.url")
            return SourceEntry(location, orjson.dumps(entry), None, issue, method, url)
        return SourceEntry(location, orjson.dumps(entry), None, None, method, url)
    resource = entry.get("resource")
    if resource is None:
        issue = _issue("reader.entry", f"{location}: the entry has no resource; a {method or 'Bundle'} entry must carry one", location, "required", "Bundle.entry.resource")
        return SourceEntry(location, orjson.dumps(entry), None, issue, method, url)
    raw = orjson.dumps(resource)
    if not isinstance(resource, dict):
        issue = _issue("reader.not-object", f"{location}: the entry's resource must be a JSON object, got {type(resource).__name__}", location, "structure", "Bundle.entry.resource")
        return SourceEntry(location, raw, None, issue, method, url)
    found = _resource_entry(resource, raw, location, limits)
    return SourceEntry(found.location, found.raw, found.resource, found.error, method, url)


def _resolve_bundle_references(entries: list[Any], read: list[SourceEntry]) -> None:
    """Rewrite references to an entry's fullUrl into that entry's `Type/id` (see module doc)."""
    targets: dict[str, str] = {}
    for entry, found in zip(entries, read):
        resource = found.resource
        full_url = entry.get("fullUrl") if isinstance(entry, dict) else None
        if resource is None or not isinstance(full_url, str):
            continue
        if "id" not in resource and full_url.startswith("urn:uuid:") and ID_PATTERN.fullmatch(full_url[9:]):
            resource["id"] = full_url[9:]
        resource_id = resource.get("id")
        if isinstance(resource_id, str):
            targets[full_url] = f"{resource['resourceType']}/{resource_id}"
    if targets:
        for found in read:
            if found.resource is not None:
                _rewrite_references(found.resource, targets)


def _rewrite_references(node: dict[str, Any] | list[Any], targets: dict[str, str]) -> None:
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        if isinstance(value, (dict, list)):
            _rewrite_references(value, targets)
        elif key == "reference" and isinstance(value, str):
            target = targets.get(value)
            if target is not None:
                node[key] = target  # type: ignore[index]


def _resource_entry(resource: dict[str, Any], raw: bytes, location: str, limits: ReadLimits) -> SourceEntry:
    if len(raw) > limits.max_resource_bytes:
        issue = _issue("reader.oversized", f"{location}: the resource is {len(raw)} bytes, above the {limits.max_resource_bytes}-byte limit for one resource; split it or raise the limit", location, "too-long")
        return SourceEntry(location, raw[:_EVIDENCE_BYTES], None, issue)
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or not resource_type:
        issue = _issue("reader.resource-type", f"{location}: the object has no resourceType string, so it is not a FHIR resource; add \"resourceType\"", location, "required", "resourceType")
        return SourceEntry(location, raw, None, issue)
    return SourceEntry(location, raw, resource)


def _parse(data: bytes, location: str) -> tuple[dict[str, Any] | None, Issue | None]:
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        return None, _issue("reader.json", f"{location}: not valid JSON ({error}); fix the syntax", location, "structure")
    if not isinstance(document, dict):
        return None, _issue("reader.not-object", f"{location}: a FHIR resource is a JSON object, got {type(document).__name__}", location, "structure")
    return document, None


def _issue(rule: str, text: str, location: str, code: str, path: str | None = None) -> Issue:
    return Issue(Severity.ERROR, rule, f"{text} (rule {rule})", path=path, location=location, code=code)


def _failed_unit(source: str, location: str, raw: bytes, issue: Issue) -> ImportUnit:
    return ImportUnit(source, atomic=False, entries=(SourceEntry(location, raw, None, issue),))


#: Every rule id the readers can raise.
READER_RULES: Final = (
    "reader.io", "reader.json", "reader.not-object", "reader.resource-type", "reader.oversized",
    "reader.bundle-type", "reader.entry", "reader.request",
)
