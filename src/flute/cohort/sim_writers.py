"""Writing a site's simulated resources in the two shapes hospitals export FHIR in.

Both writers take the same per-patient resource lists, so the content of the two formats cannot
drift apart:
- `bundles`: one Bundle of type `batch` per patient, entries `PUT Type/id`. Batch, not
  transaction: each entry stands alone, so one invalid resource is quarantined while the rest of
  the patient imports (the IG's examples are transactions, which would reject the whole patient).
- `ndjson`: FHIR Bulk Data export files, one per resource type (Patient.ndjson, ...).
"""

from __future__ import annotations

from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import IO, Any, Iterator, Protocol, Sequence

import orjson


class OutputFormat(str, Enum):
    BUNDLES = "bundles"
    NDJSON = "ndjson"


class SiteWriter(Protocol):
    """Receives one patient's resources at a time; `close` flushes everything."""

    def write_patient(self, patient_id: str, resources: Sequence[dict[str, Any]]) -> None: ...

    def close(self) -> None: ...


class BatchBundleWriter:
    """One `<patient id>.json` batch Bundle per patient in the site directory."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def write_patient(self, patient_id: str, resources: Sequence[dict[str, Any]]) -> None:
        bundle = {
            "resourceType": "Bundle",
            "id": patient_id,
            "type": "batch",
            "entry": [
                {
                    "resource": resource,
                    "request": {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"},
                }
                for resource in resources
            ],
        }
        (self._directory / f"{patient_id}.json").write_bytes(orjson.dumps(bundle))

    def close(self) -> None:
        """Every Bundle is complete once written."""


class BulkNdjsonWriter:
    """`<ResourceType>.ndjson` files, one resource per line, in patient order."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._files: dict[str, IO[bytes]] = {}

    def write_patient(self, patient_id: str, resources: Sequence[dict[str, Any]]) -> None:
        for resource in resources:
            resource_type = resource["resourceType"]
            out = self._files.get(resource_type)
            if out is None:
                out = self._files[resource_type] = (self._directory / f"{resource_type}.ndjson").open("wb")
            out.write(orjson.dumps(resource) + b"\n")

    def close(self) -> None:
        for out in self._files.values():
            out.close()
        self._files.clear()


@contextmanager
def open_site_writer(fmt: OutputFormat, directory: Path) -> Iterator[SiteWriter]:
    """The writer for `fmt` in `directory` (created if needed), closed when the block ends."""
    directory.mkdir(parents=True, exist_ok=True)
    writer: SiteWriter = BatchBundleWriter(directory) if fmt is OutputFormat.BUNDLES else BulkNdjsonWriter(directory)
    try:
        yield writer
    finally:
        writer.close()
