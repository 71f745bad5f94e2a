"""What a data manager reads about a hub: patient and label counts, the quarantine by rule,
the import batches, and the quarantined records themselves (NF-PIL-3: rejections are visible
with their reasons, never silently dropped)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import func, select

from flute.hub.models import ImportBatch, PatientRecord, QuarantineRecord, StoredResource, StudyRowRecord
from flute.hub.store import HubStore


@dataclass(frozen=True)
class BatchSummary:
    id: int
    source: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    read: int
    stored: int
    unchanged: int
    quarantined: int
    note: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "source": self.source, "status": self.status,
            "started_at": self.started_at.isoformat(), "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "read": self.read, "stored": self.stored, "unchanged": self.unchanged, "quarantined": self.quarantined, "note": self.note,
        }


@dataclass(frozen=True)
class HubSummary:
    """Counts over non-withdrawn patients. `cspca_prevalence` is csPCa / labelled among the
    included patients (None without labelled included patients)."""

    patients: int
    withdrawn: int
    included: int
    labelled: int
    cspca_positive: int
    current_resources: int
    quarantined: int
    quarantined_by_rule: dict[str, int]
    batches: tuple[BatchSummary, ...]

    @property
    def cspca_prevalence(self) -> float | None:
        return self.cspca_positive / self.labelled if self.labelled else None

    def to_json(self) -> dict[str, Any]:
        return {
            "patients": self.patients, "withdrawn": self.withdrawn, "included": self.included,
            "labelled": self.labelled, "cspca_positive": self.cspca_positive, "cspca_prevalence": self.cspca_prevalence,
            "current_resources": self.current_resources, "quarantined": self.quarantined,
            "quarantined_by_rule": self.quarantined_by_rule, "batches": [b.to_json() for b in self.batches],
        }


@dataclass(frozen=True)
class QuarantinedEntry:
    """One rejected entry: `raw` exactly as received, `reasons` as Issue.to_json() objects."""

    id: int
    batch_id: int
    location: str
    resource_type: str | None
    resource_id: str | None
    reasons: tuple[dict[str, Any], ...]
    raw: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "batch": self.batch_id, "location": self.location, "resourceType": self.resource_type,
            "resourceId": self.resource_id, "reasons": list(self.reasons), "raw": self.raw.decode("utf-8", errors="replace"),
        }


def summarize(store: HubStore) -> HubSummary:
    patient, row, stored = PatientRecord.__table__.c, StudyRowRecord.__table__.c, StoredResource.__table__.c
    active = patient.withdrawn_at.is_(None)
    with store.engine.connect() as connection:
        patients = connection.execute(select(func.count()).where(active)).scalar_one()
        withdrawn = connection.execute(select(func.count()).select_from(PatientRecord).where(patient.withdrawn_at.is_not(None))).scalar_one()
        included_rows = select(row.cspca).join(PatientRecord, patient.pseudonym == row.pseudonym).where(active, row.included.is_(True)).subquery()
        included, labelled, positive = connection.execute(
            select(func.count(), func.count(included_rows.c.cspca), func.coalesce(func.sum(included_rows.c.cspca), 0))
        ).one()
        current = connection.execute(select(func.count()).where(stored.is_current.is_(True), stored.withdrawn.is_(False))).scalar_one()
        by_rule: Counter[str] = Counter()
        quarantined = 0
        for (reasons,) in connection.execute(select(QuarantineRecord.reasons)):
            quarantined += 1
            by_rule.update(reason["rule"] for reason in orjson.loads(reasons))
        batches = tuple(
            BatchSummary(
                b.id, b.source, b.status, b.started_at, b.finished_at, b.read_count, b.stored_count, b.unchanged_count, b.quarantined_count, b.note
            )
            for b in connection.execute(select(ImportBatch.__table__).order_by(ImportBatch.id))
        )
    return HubSummary(
        patients=patients, withdrawn=withdrawn, included=included, labelled=labelled, cspca_positive=int(positive),
        current_resources=current, quarantined=quarantined, quarantined_by_rule=dict(sorted(by_rule.items())), batches=batches,
    )


def quarantined_entries(store: HubStore, batch_id: int | None = None) -> list[QuarantinedEntry]:
    table = QuarantineRecord.__table__
    query = select(table).order_by(table.c.id)
    if batch_id is not None:
        query = query.where(table.c.batch_id == batch_id)
    with store.engine.connect() as connection:
        return [
            QuarantinedEntry(r.id, r.batch_id, r.location, r.resource_type, r.resource_id, tuple(orjson.loads(r.reasons)), r.raw)
            for r in connection.execute(query)
        ]
