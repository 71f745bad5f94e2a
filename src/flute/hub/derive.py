"""Re-deriving study rows (F-PIL-27..32) for the patients whose resources changed.

The store, not the import stream, is the source: a patient's resources may arrive in several
files (Bulk Data writes one per resource type) or several imports, so each stale patient's row
is rebuilt from all of their current, non-withdrawn resources. Stale patients are marked in the
same transaction that stores their resources; this works through them in chunks, so memory
stays flat and an interrupted import's work is finished by the next. A chunk reads its patients'
resources, extracts their rows, then writes the rows and clears the marks in one transaction
that starts with a write (on SQLite it takes the write lock before reading anything, so two
processes deriving disjoint pseudonym ranges - `flute.hub.pipeline` - wait for each other
instead of failing on a stale read snapshot); a patient withdrawn meanwhile gets no row.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, Delete, Engine, Select, Update, and_, select, true, update

from flute.fhir.extract import InclusionRule, extract_patient
from flute.hub.bulk import bulk_insert, in_values
from flute.hub.models import VARIABLE_COLUMNS, PatientRecord, StoredResource, StudyRowRecord

CHUNK_PATIENTS = 500
#: The study_row columns in the order `_study_row` gives their values.
STUDY_ROW_COLUMNS = ("pseudonym", *VARIABLE_COLUMNS.values(), "isup", "cspca", "included", "derived_from_batch", "updated_at")

@dataclass(frozen=True)
class PseudonymRange:
    """The patients whose pseudonym is >= low and < high (None: unbounded)."""

    low: str | None = None
    high: str | None = None

    def condition(self, column: ColumnElement[str]) -> ColumnElement[bool]:
        bounds = [column >= self.low] if self.low is not None else []
        if self.high is not None:
            bounds.append(column < self.high)
        return and_(true(), *bounds)


EVERY_PATIENT = PseudonymRange()


@dataclass(frozen=True)
class _DeriveStatements:
    """The statements of one derivation chunk, built once per dialect (`bulk.in_values`)."""

    current_bodies: Select[Any]
    delete_rows: Delete
    withdrawn: Select[Any]
    mark_derived: Update

    @staticmethod
    @cache
    def for_dialect(dialect_name: str) -> _DeriveStatements:
        stored, study_row, patient = StoredResource.__table__.c, StudyRowRecord.__table__.c, PatientRecord.__table__.c
        return _DeriveStatements(
            current_bodies=select(stored.patient_pseudonym, stored.resource_type, stored.resource_id, stored.body).where(
                in_values(stored.patient_pseudonym, "pseudonyms", dialect_name), stored.is_current.is_(True), stored.withdrawn.is_(False)
            ),
            delete_rows=StudyRowRecord.__table__.delete().where(in_values(study_row.pseudonym, "pseudonyms", dialect_name)),
            withdrawn=select(patient.pseudonym).where(in_values(patient.pseudonym, "pseudonyms", dialect_name), patient.withdrawn_at.is_not(None)),
            mark_derived=update(PatientRecord.__table__).where(in_values(patient.pseudonym, "pseudonyms", dialect_name)).values(needs_derivation=False),
        )


def derive_stale_rows(engine: Engine, batch_id: int, rule: InclusionRule, shard: PseudonymRange = EVERY_PATIENT) -> tuple[int, Counter[str]]:
    """Rebuild the rows of every stale, non-withdrawn patient in `shard`. Returns how many
    rows were derived and the extraction findings by rule (e.g. an ignored entered-in-error
    result)."""
    patient = PatientRecord.__table__.c
    stale = (
        select(patient.pseudonym)
        .where(patient.needs_derivation.is_(True), patient.withdrawn_at.is_(None), shard.condition(patient.pseudonym))
        .order_by(patient.pseudonym)
        .limit(CHUNK_PATIENTS)
    )
    statements = _DeriveStatements.for_dialect(engine.dialect.name)
    findings: Counter[str] = Counter()
    derived_total = 0
    while True:
        with engine.connect() as connection:
            pseudonyms = connection.execute(stale).scalars().all()
            if not pseudonyms:
                return derived_total, findings
            resources = _current_resources(connection, statements, pseudonyms)
        now = datetime.now(UTC)
        rows = [_study_row(pseudonym, patient_resources, rule, batch_id, now, findings) for pseudonym, patient_resources in resources.items()]
        with engine.begin() as connection:
            connection.execute(statements.delete_rows, {"pseudonyms": pseudonyms})  # the write first (see the module doc)
            withdrawn = set(connection.execute(statements.withdrawn, {"pseudonyms": pseudonyms}).scalars())
            derived = [row for row in rows if row is not None and row[0] not in withdrawn]
            bulk_insert(connection, StudyRowRecord.__table__, STUDY_ROW_COLUMNS, derived)
            connection.execute(statements.mark_derived, {"pseudonyms": pseudonyms})
        derived_total += len(derived)


def _current_resources(connection: Connection, statements: _DeriveStatements, pseudonyms: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Each patient's current resources, ordered by type and id (extraction breaks ties by that
    order). Sorted here, per patient, not by an SQL ORDER BY: SQLite's sorter would copy every
    body into a temporary B-tree (~2 us a row, a tenth of the derivation); Python's order of
    str is code-point order, which is SQLite's BINARY collation, and on PostgreSQL it does not
    depend on the database's collation."""
    by_patient: dict[str, list[tuple[str, str, str]]] = {p: [] for p in pseudonyms}
    for pseudonym, resource_type, resource_id, body in connection.execute(statements.current_bodies, {"pseudonyms": pseudonyms}).all():
        by_patient[pseudonym].append((resource_type, resource_id, body))
    return {pseudonym: [orjson.loads(body) for _, _, body in sorted(rows)] for pseudonym, rows in by_patient.items()}


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
