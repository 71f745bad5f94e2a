"""Validation findings: one typed record shared by readers, the rule engine, extraction and the
hub's quarantine (NF-PIL-3: validators check pushed data against the common model).

An Issue says what is wrong, where and why, in words a data manager can act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Severity(str, Enum):
    """FHIR OperationOutcome.issue.severity values FLUTE uses."""

    FATAL = "fatal"
    ERROR = "error"
    WARNING = "warning"
    INFORMATION = "information"

    @property
    def blocks_import(self) -> bool:
        return self in (Severity.FATAL, Severity.ERROR)


@dataclass(frozen=True)
class Issue:
    """One finding about one resource (or one unreadable input).

    `rule` is the stable identifier of the rule that fired (e.g. "psa.unit"); `path` is the
    FHIRPath-like element location (e.g. "Observation.valueQuantity.code"); `location` says
    where the resource came from (file and entry/line, or URL); `code` is the FHIR
    OperationOutcome issue-type (invalid, required, value, code-invalid, structure, too-long,
    not-found, duplicate, ...), None meaning the generic "invalid".
    """

    severity: Severity
    rule: str
    message: str
    resource_type: str | None = None
    resource_id: str | None = None
    path: str | None = None
    location: str | None = None
    code: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return {
            "severity": self.severity.value,
            "rule": self.rule,
            "message": self.message,
            "resourceType": self.resource_type,
            "id": self.resource_id,
            "path": self.path,
            "location": self.location,
            "code": self.code or "invalid",
        }
