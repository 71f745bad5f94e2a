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
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, bindparam, select, update

from flute.fhir.extract import InclusionRule, extract_patient
from flute.hub.models import VARIABLE_COLUMNS, PatientRecord, StoredResource, StudyRowRecord

CHUNK_PATIENTS = 500

# Built once, with expanding parameters: `in_(list)` would coerce each pseudonym of a chunk into
# its own bound parameter object on every execution.
_PSEUDONYMS = bindparam("pseudonyms", expanding=True)
_STORED = StoredResource.__table__.c
_CURRENT_BODIES = (
    select(_STORED.patient_pseudonym, _STORED.body)
    .where(_STORED.patient_pseudonym.in_(_PSEUDONYMS), _STORED.is_current.is_(True), _STORED.withdrawn.is_(False))
    .order_by(_STORED.resource_type, _STORED.resource_id)
)
_DELETE_ROWS = StudyRowRecord.__table__.delete().where(StudyRowRecord.__table__.c.pseudonym.in_(_PSEUDONYMS))
_MARK_DERIVED = update(PatientRecord.__table__).where(PatientRecord.__table__.c.pseudonym.in_(_PSEUDONYMS)).values(needs_derivation=False)


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
            rows = [
                _study_row(pseudonym, resources, rule, batch_id, findings)
                for pseudonym, resources in _current_resources(connection, pseudonyms).items()
            ]
            derived = [row for row in rows if row is not None]
            connection.execute(_DELETE_ROWS, {"pseudonyms": pseudonyms})
            if derived:
                connection.execute(StudyRowRecord.__table__.insert(), derived)
            connection.execute(_MARK_DERIVED, {"pseudonyms": pseudonyms})
            derived_total += len(derived)


def _current_resources(connection: Connection, pseudonyms: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    by_patient: dict[str, list[dict[str, Any]]] = {p: [] for p in pseudonyms}
    for pseudonym, body in connection.execute(_CURRENT_BODIES, {"pseudonyms": pseudonyms}).all():
        by_patient[pseudonym].append(orjson.loads(body))
    return by_patient


def _study_row(
    pseudonym: str, resources: list[dict[str, Any]], rule: InclusionRule, batch_id: int, findings: Counter[str]
) -> dict[str, Any] | None:
    """The study_row values of one patient; None without a current Patient resource."""
    patients = [r for r in resources if r.get("resourceType") == "Patient"]
    if not patients:
        return None
    row, issues = extract_patient(patients[0], [r for r in resources if r.get("resourceType") != "Patient"], rule)
    findings.update(issue.rule for issue in issues)
    return {
        "pseudonym": pseudonym,
        **{column: _as_float(row.variables.get(name)) for name, column in VARIABLE_COLUMNS.items()},
        "isup": row.isup,
        "cspca": row.cspca,
        "included": row.included,
        "derived_from_batch": batch_id,
        "updated_at": datetime.now(UTC),
    }


def _as_float(value: float | int | None) -> float | None:
    return None if value is None else float(value)
