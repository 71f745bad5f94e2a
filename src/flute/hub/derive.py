"""Re-deriving study rows (F-PIL-27..32) for the patients whose resources changed.

The store, not the import stream, is the source: a patient's resources may arrive in several
files (Bulk Data writes one per resource type) or several imports, so each stale patient's row
is rebuilt from all of their current, non-withdrawn resources. Stale patients are marked in the
same transaction that stores their resources; this works through them in chunks, one
transaction each, so memory stays flat and an interrupted import's work is finished by the next.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import orjson
from sqlalchemy import Connection, Delete, Engine, Select, Update, select, update

from flute.fhir.extract import InclusionRule, extract_patient
from flute.hub.bulk import bulk_insert, in_values
from flute.hub.models import VARIABLE_COLUMNS, PatientRecord, StoredResource, StudyRowRecord

CHUNK_PATIENTS = 500
#: The study_row columns in the order `_study_row` gives their values.
STUDY_ROW_COLUMNS = ("pseudonym", *VARIABLE_COLUMNS.values(), "isup", "cspca", "included", "derived_from_batch", "updated_at")

@dataclass(frozen=True)
class _DeriveStatements:
    """The statements of one derivation chunk, built once per dialect (`bulk.in_values`)."""

    current_bodies: Select[Any]
    delete_rows: Delete
    mark_derived: Update

    @staticmethod
    @cache
    def for_dialect(dialect_name: str) -> _DeriveStatements:
        stored, study_row, patient = StoredResource.__table__.c, StudyRowRecord.__table__.c, PatientRecord.__table__.c
        return _DeriveStatements(
            current_bodies=(
                select(stored.patient_pseudonym, stored.body)
                .where(in_values(stored.patient_pseudonym, "pseudonyms", dialect_name), stored.is_current.is_(True), stored.withdrawn.is_(False))
                .order_by(stored.resource_type, stored.resource_id)
            ),
            delete_rows=StudyRowRecord.__table__.delete().where(in_values(study_row.pseudonym, "pseudonyms", dialect_name)),
            mark_derived=update(PatientRecord.__table__).where(in_values(patient.pseudonym, "pseudonyms", dialect_name)).values(needs_derivation=False),
        )


def derive_stale_rows(engine: Engine, batch_id: int, rule: InclusionRule) -> tuple[int, Counter[str]]:
    """Rebuild the rows of every stale, non-withdrawn patient. Returns how many rows were
    derived and the extraction findings by rule (e.g. an ignored entered-in-error result)."""
    patient = PatientRecord.__table__.c
    findings: Counter[str] = Counter()
    derived_total = 0
    while True:
        with engine.begin() as connection:
            pseudonyms = connection.execute(
                select(patient.pseudonym)
                .where(patient.needs_derivation.is_(True), patient.withdrawn_at.is_(None))
                .order_by(patient.pseudonym)
                .limit(CHUNK_PATIENTS)
            ).scalars().all()
            if not pseudonyms:
                return derived_total, findings
            statements = _DeriveStatements.for_dialect(connection.dialect.name)
            now = datetime.now(UTC)
            rows = [
                _study_row(pseudonym, resources, rule, batch_id, now, findings)
                for pseudonym, resources in _current_resources(connection, statements, pseudonyms).items()
            ]
            derived = [row for row in rows if row is not None]
            connection.execute(statements.delete_rows, {"pseudonyms": pseudonyms})
            bulk_insert(connection, StudyRowRecord.__table__, STUDY_ROW_COLUMNS, derived)
            connection.execute(statements.mark_derived, {"pseudonyms": pseudonyms})
            derived_total += len(derived)


def _current_resources(connection: Connection, statements: _DeriveStatements, pseudonyms: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    by_patient: dict[str, list[dict[str, Any]]] = {p: [] for p in pseudonyms}
    for pseudonym, body in connection.execute(statements.current_bodies, {"pseudonyms": pseudonyms}).all():
        by_patient[pseudonym].append(orjson.loads(body))
    return by_patient


def _study_row(
    pseudonym: str, resources: list[dict[str, Any]], rule: InclusionRule, batch_id: int, now: datetime, findings: Counter[str]
) -> tuple[Any, ...] | None:
    """The study_row values of one patient, in STUDY_ROW_COLUMNS order; None without a current
    Patient resource."""
    patients = [r for r in resources if r.get("resourceType") == "Patient"]
    if not patients:
        return None
    row, issues = extract_patient(patients[0], [r for r in resources if r.get("resourceType") != "Patient"], rule)
    findings.update(issue.rule for issue in issues)
    variables = tuple(_as_float(row.variables.get(name)) for name in VARIABLE_COLUMNS)
    return (pseudonym, *variables, row.isup, row.cspca, row.included, batch_id, now)


def _as_float(value: float | int | None) -> float | None:
    return None if value is None else float(value)
