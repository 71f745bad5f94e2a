"""The hub's ingest pipeline (F-PIL-5, F-HUF-19, NF-PIL-2/3/4): read units -> prepare them
(validate, canonical body and hash: `flute.hub.prepare`) -> check subjects -> store resources
(with history) -> re-derive the study rows of the patients touched -> quarantine what was
rejected, with its reasons. Preparing needs no store, so large imports run it in a helper
process (`flute.hub.pipeline`); the decisions and writes below are the same either way.

Guarantees:
- Nothing is silently lost: every entry read ends as stored, unchanged or quarantined, and the
  batch record's counts add up (read = stored + unchanged + quarantined).
- A transaction Bundle is all-or-nothing; batch/collection Bundle entries and NDJSON lines are
  judged one by one.
- Re-importing the same content is idempotent (hash of the canonical JSON, so the same resource
  from a Bundle or from an NDJSON line is recognised); a newer version becomes current and the
  earlier one stays in history.
- Crash safety: units are committed in chunks, each chunk in one transaction together with the
  batch counts and the "needs derivation" marks of its patients, so a killed import leaves a
  consistent store, and the next import finishes the derivation and stores what was missing.
- Memory is flat in the input size: units stream through in chunks and study rows are derived
  per chunk of patients from the store. (Exception: an entry whose Patient appears later in the
  same batch waits in memory until the end of the batch; `Hub.import_paths` therefore reads
  Bulk Data Patient files first.)
"""

from __future__ import annotations

import gc
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from functools import cache
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Connection, Select, Update, bindparam, select, update

from flute.fhir.extract import InclusionRule
from flute.fhir.issues import Issue
from flute.fhir.source import ImportUnit
from flute.fhir.validate import check_references
from flute.governance.audit import record
from flute.hub.bulk import bulk_insert, in_values
from flute.hub.derive import derive_stale_rows
from flute.hub.pipeline import DeriveTask, PreparingProcess, chunks_of, prepared_chunks
from flute.hub.prepare import PreparedEntry, PreparedUnit, rejection
from flute.hub.models import (
    BatchStatus,
    ImportBatch,
    PatientRecord,
    ProvenanceRecord,
    QuarantineRecord,
    StoredResource,
)
from flute.hub.pseudonym import Pseudonymizer
from flute.hub.store import HubStore

DEFAULT_CHUNK_ENTRIES = 2000
#: Allocations between young-generation garbage collections during an import (see _fewer_collections).
IMPORT_GC_THRESHOLD = 50_000

RULE_WITHDRAWN = "patient.withdrawn"
RULE_ROLLED_BACK = "transaction.rolled-back"


class EntryOutcome(str, Enum):
    STORED = "stored"
    UNCHANGED = "unchanged"
    QUARANTINED = "quarantined"


@dataclass
class BatchReport:
    """What one import did; `quarantined_by_rule` counts the issues that caused rejections."""

    batch_id: int
    source: str
    status: BatchStatus = BatchStatus.RUNNING
    read: int = 0
    stored: int = 0
    unchanged: int = 0
    quarantined: int = 0
    patients_derived: int = 0
    quarantined_by_rule: Counter[str] = field(default_factory=Counter)
    derivation_issues_by_rule: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {
            "batch": self.batch_id,
            "source": self.source,
            "status": self.status.value,
            "read": self.read,
            "stored": self.stored,
            "unchanged": self.unchanged,
            "quarantined": self.quarantined,
            "patients_derived": self.patients_derived,
            "quarantined_by_rule": dict(sorted(self.quarantined_by_rule.items())),
            "derivation_issues_by_rule": dict(sorted(self.derivation_issues_by_rule.items())),
        }


@dataclass
class _Version:
    """A stored (row_id set) or about-to-be-stored version of one resource, during a chunk."""

    content_hash: str
    version_id: str | None
    last_updated: str | None
    pseudonym: str | None
    is_current: bool
    row_id: int | None = None


class _Accepted(NamedTuple):
    """An entry that passed every check, ready to be stored (its body and content hash are set).
    (The verdicts are named tuples: one per entry, built faster than frozen dataclasses.)"""

    entry: PreparedEntry
    resource_type: str
    resource_id: str
    pseudonym: str | None


class _Rejected(NamedTuple):
    entry: PreparedEntry
    issues: tuple[Issue, ...]


class _Deferred(NamedTuple):
    """Entries whose Patient was not (yet) known: retried once the whole batch was read."""

    unit: PreparedUnit


def is_newer(incoming: _Version, current: _Version) -> bool:
    """Whether an incoming version supersedes the current one: by integer meta.versionId, else
    by meta.lastUpdated, else the later import wins."""
    if incoming.version_id and current.version_id and incoming.version_id.isdigit() and current.version_id.isdigit():
        return int(incoming.version_id) >= int(current.version_id)
    if incoming.last_updated and current.last_updated:
        try:
            return _instant(incoming.last_updated) >= _instant(current.last_updated)
        except ValueError:
            pass
    return True


def _instant(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class _ChunkStatements:
    """The statements a chunk runs, built once per dialect (`bulk.in_values` explains why the
    id lists are not expanding IN clauses on SQLite)."""

    stored_versions: Select[Any]
    patient_states: Select[Any]
    mark_stale: Update
    demote: Update

    @staticmethod
    @cache
    def for_dialect(dialect_name: str) -> _ChunkStatements:
        stored, patient = StoredResource.__table__.c, PatientRecord.__table__.c
        return _ChunkStatements(
            stored_versions=select(
                stored.row_id, stored.resource_id, stored.content_hash, stored.version_id,
                stored.last_updated, stored.patient_pseudonym, stored.is_current,
            ).where(stored.resource_type == bindparam("resource_type"), in_values(stored.resource_id, "ids", dialect_name)),
            patient_states=select(patient.pseudonym, patient.withdrawn_at).where(in_values(patient.pseudonym, "pseudonyms", dialect_name)),
            mark_stale=update(PatientRecord.__table__).where(in_values(patient.pseudonym, "pseudonyms", dialect_name)).values(needs_derivation=True),
            demote=update(StoredResource.__table__).where(in_values(stored.row_id, "row_ids", dialect_name)).values(is_current=False),
        )


class _Chunk:
    """Decides the fate of the entries of a chunk of units against a snapshot of the store,
    then writes every decision in one transaction."""

    def __init__(self, connection: Connection, units: Sequence[PreparedUnit], allow_defer: bool) -> None:
        self._connection = connection
        self._units = units
        self._allow_defer = allow_defer
        self._versions: dict[tuple[str, str], list[_Version]] = {}
        self._patient_pseudonyms: dict[str, str] = {}
        self._stored_patient_pseudonyms: dict[str, str] = {}
        self._known_pseudonyms: set[str] = set()
        self._withdrawn: set[str] = set()
        self._load_snapshot()

    def _load_snapshot(self) -> None:
        """Reads what the chunk's decisions depend on: stored versions of its resources, the
        pseudonyms of the Patients it refers to, and which of those patients exist or withdrew."""
        statements = _ChunkStatements.for_dialect(self._connection.dialect.name)
        ids_by_type: defaultdict[str, set[str]] = defaultdict(set)
        for unit in self._units:
            for entry in unit.entries:
                resource_id = entry.id_field
                if entry.type_field and resource_id:
                    ids_by_type[entry.type_field].add(resource_id)
                if entry.subject:
                    ids_by_type["Patient"].add(entry.subject)
        for resource_type, ids in ids_by_type.items():  # per type: served by the (type, id) index
            rows = self._connection.execute(statements.stored_versions, {"resource_type": resource_type, "ids": ids}).all()
            for row_id, resource_id, content_hash, version_id, last_updated, pseudonym, is_current in rows:
                version = _Version(content_hash, version_id, last_updated, pseudonym, is_current, row_id)
                versions = self._versions.get((resource_type, resource_id))
                if versions is None:
                    self._versions[(resource_type, resource_id)] = [version]
                else:
                    versions.append(version)
                if resource_type == "Patient" and is_current and pseudonym:
                    self._patient_pseudonyms[resource_id] = pseudonym
        # A stored Patient keeps its pseudonym even if its identifiers change.
        self._stored_patient_pseudonyms = dict(self._patient_pseudonyms)
        candidates = set(self._patient_pseudonyms.values())
        for unit in self._units:
            for entry in unit.entries:
                if entry.identity_pseudonym is not None:
                    candidates.add(self._patient_pseudonym(entry))
        if candidates:
            for row in self._connection.execute(statements.patient_states, {"pseudonyms": candidates}):
                self._known_pseudonyms.add(row.pseudonym)
                if row.withdrawn_at is not None:
                    self._withdrawn.add(row.pseudonym)

    def _patient_pseudonym(self, entry: PreparedEntry) -> str | None:
        """A Patient entry's pseudonym: that of the stored Patient with its id, else from its identifiers."""
        return self._stored_patient_pseudonyms.get(entry.id_field or "") or entry.identity_pseudonym

    def judge(self) -> Iterator[_Accepted | _Rejected | _Deferred]:
        for unit in self._units:
            entries = unit.entries
            if not unit.atomic and len(entries) == 1:  # the NDJSON / batch-entry fast path
                verdict = self._judge_entry(entries[0], {})
                if verdict is None:
                    yield _Deferred(unit)
                else:
                    self._remember_patient(verdict)
                    yield verdict
            else:
                yield from self._judge_unit(unit)

    def _remember_patient(self, verdict: _Accepted | _Rejected) -> None:
        if isinstance(verdict, _Accepted) and verdict.resource_type == "Patient" and verdict.pseudonym:
            self._patient_pseudonyms[verdict.resource_id] = verdict.pseudonym

    def _judge_unit(self, unit: PreparedUnit) -> Iterator[_Accepted | _Rejected | _Deferred]:
        entries = unit.entries
        # Patients first, so the unit's other entries can refer to them.
        order = sorted(range(len(entries)), key=lambda i: entries[i].type_field != "Patient")
        unit_patients: dict[str, str] = {}
        verdicts: dict[int, _Accepted | _Rejected | None] = {}
        for index in order:
            verdict = self._judge_entry(entries[index], unit_patients)
            if isinstance(verdict, _Accepted) and verdict.resource_type == "Patient" and verdict.pseudonym:
                unit_patients[verdict.resource_id] = verdict.pseudonym
            verdicts[index] = verdict
        if unit.atomic:
            yield from self._atomic_outcome(unit, verdicts)
            return
        for index, verdict in sorted(verdicts.items()):
            if verdict is None:
                yield _Deferred(PreparedUnit(unit.source, False, (entries[index],)))
            else:
                self._remember_patient(verdict)
                yield verdict

    def _atomic_outcome(self, unit: PreparedUnit, verdicts: dict[int, _Accepted | _Rejected | None]) -> Iterator[_Accepted | _Rejected | _Deferred]:
        failed = [(i, v) for i, v in sorted(verdicts.items()) if isinstance(v, _Rejected)]
        if not failed and any(v is None for v in verdicts.values()):
            yield _Deferred(unit)
            return
        if not failed:
            for _, verdict in sorted(verdicts.items()):
                assert verdict is not None
                self._remember_patient(verdict)
                yield verdict
            return
        first_index, first = failed[0]
        cause = first.issues[0]
        for index, entry in enumerate(unit.entries):
            verdict = verdicts[index]
            if isinstance(verdict, _Rejected):
                yield verdict
                continue
            rollback = rejection(
                RULE_ROLLED_BACK,
                "processing",
                f"rolled back: entry {first_index + 1} failed ({cause.rule}: {cause.message}); "
                "a transaction Bundle is stored all-or-nothing - fix that entry and re-import the Bundle",
                entry.location, entry.type_field, entry.id_field,
            )
            yield _Rejected(entry, (rollback,))

    def _judge_entry(self, entry: PreparedEntry, unit_patients: dict[str, str]) -> _Accepted | _Rejected | None:
        """The verdict on one entry; None when its subject is not known yet (may be deferred)."""
        if entry.issues:
            return _Rejected(entry, entry.issues)
        resource_type, resource_id = entry.type_field, entry.id_field
        assert resource_type is not None and resource_id, "prepare_entry rejects entries without type and id"
        if resource_type == "Patient":
            pseudonym: str | None = self._patient_pseudonym(entry)
        elif entry.subject is None:
            pseudonym = ""  # not about a patient
        else:
            pseudonym = unit_patients.get(entry.subject) or self._patient_pseudonyms.get(entry.subject)
        if pseudonym is None:
            if self._allow_defer:
                return None
            # Unknown in this batch and in the store: the validator's cross-resource rule words it.
            return _Rejected(entry, tuple(check_references([entry.resource()], lambda _type, _id: False)))
        if pseudonym in self._withdrawn:
            return _Rejected(entry, (rejection(
                RULE_WITHDRAWN,
                "forbidden",
                f"patient {pseudonym} has withdrawn from the study (NF-PIL-11); their data is refused",
                entry.location, resource_type, resource_id,
            ),))
        return _Accepted(entry, resource_type, resource_id, pseudonym or None)

    def place(self, accepted: _Accepted) -> tuple[EntryOutcome, _Version | None, set[str]]:
        """Where an accepted entry goes: unchanged, or a new version (current or history).
        Returns the outcome, the new version, and the pseudonyms whose rows must be re-derived."""
        entry = accepted.entry
        assert entry.content_hash is not None
        incoming = _Version(entry.content_hash, entry.version_id, entry.last_updated, accepted.pseudonym, True)
        touched = {accepted.pseudonym} if accepted.pseudonym else set()
        key = (accepted.resource_type, accepted.resource_id)
        versions = self._versions.get(key)
        if versions is None:  # neither stored nor seen in this chunk: most entries of a first import
            self._versions[key] = [incoming]
            return EntryOutcome.STORED, incoming, touched
        if any(v.content_hash == entry.content_hash for v in versions):
            return EntryOutcome.UNCHANGED, None, set()
        current = next((v for v in versions if v.is_current), None)
        if current is not None:
            if is_newer(incoming, current):
                current.is_current = False
                if current.pseudonym:
                    touched.add(current.pseudonym)
            else:
                incoming.is_current = False
                touched = set()
        versions.append(incoming)
        return EntryOutcome.STORED, incoming, touched

    def demoted_row_ids(self) -> list[int]:
        """Stored versions that this chunk's entries superseded."""
        return [v.row_id for versions in self._versions.values() for v in versions if v.row_id is not None and not v.is_current]

    def is_new_patient(self, pseudonym: str) -> bool:
        if pseudonym in self._known_pseudonyms:
            return False
        self._known_pseudonyms.add(pseudonym)
        return True


class Ingestor:
    """Runs import batches into a hub store. The caller guarantees one import at a time per hub
    (`flute.hub.node` holds a lock), so a batch still 'running' when a new one starts was
    interrupted."""

    def __init__(
        self,
        store: HubStore,
        pseudonymizer: Pseudonymizer,
        *,
        rule: InclusionRule | None = None,
        chunk_entries: int = DEFAULT_CHUNK_ENTRIES,
    ) -> None:
        if chunk_entries < 1:
            raise ValueError(f"chunk_entries must be >= 1, got {chunk_entries}")
        self._store = store
        self._pseudonymizer = pseudonymizer
        self._rule = rule or InclusionRule()
        self._chunk_entries = chunk_entries

    def run(self, units: Iterable[ImportUnit], source: str, *, two_processes: bool = False) -> BatchReport:
        """Import `units` as one batch. `two_processes`: prepare the input in a forked helper
        process and share the derivation with it (`flute.hub.pipeline`; same results, faster
        on large input when a second core is free)."""
        with _fewer_collections(), ExitStack() as stack:
            # The helper is forked first: it prepares its first chunk while the batch is recorded.
            helper = stack.enter_context(self._helper(units)) if two_processes else None
            report = BatchReport(batch_id=self._start_batch(source), source=source)
            try:
                self._store_and_derive(units, helper, report)
            except BaseException as exc:
                if helper is not None:
                    helper.stop()  # before the batch is marked failed
                self._finish_batch(report, BatchStatus.FAILED, f"{type(exc).__name__}: {exc}")
                raise
            # Before leaving the helper's context: its process exits (~5 ms) while this commits.
            self._finish_batch(report, BatchStatus.COMPLETED, None)
        return report

    def _helper(self, units: Iterable[ImportUnit]) -> PreparingProcess:
        return PreparingProcess(units, self._pseudonymizer, self._chunk_entries, self._store.engine.url.render_as_string(hide_password=False))

    def _store_and_derive(self, units: Iterable[ImportUnit], helper: PreparingProcess | None, report: BatchReport) -> None:
        """Store every unit (those whose Patient came later once the rest is read), then derive
        the stale study rows; with a helper, it prepares the units and shares the derivation."""
        chunks = helper.chunks() if helper is not None else prepared_chunks(units, self._pseudonymizer, self._chunk_entries)
        deferred: list[PreparedUnit] = []
        for chunk in chunks:
            deferred.extend(self._write_chunk(chunk, report, allow_defer=True))
        for chunk in chunks_of(deferred, self._chunk_entries):
            self._write_chunk(chunk, report, allow_defer=False)
        task = DeriveTask(report.batch_id, self._rule)
        if helper is not None:
            derived, findings = helper.derive(self._store.engine, task)
        else:
            derived, findings = derive_stale_rows(self._store.engine, task.batch_id, task.rule)
        report.patients_derived += derived
        report.derivation_issues_by_rule.update(findings)

    def _start_batch(self, source: str) -> int:
        batch = ImportBatch.__table__
        with self._store.engine.begin() as connection:
            connection.execute(
                update(batch)
                .where(batch.c.status == BatchStatus.RUNNING.value)
                .values(status=BatchStatus.FAILED.value, note="interrupted: the importing process ended before finishing")
            )
            return connection.execute(
                batch.insert().returning(batch.c.id),
                {
                    "source": source, "started_at": datetime.now(UTC), "status": BatchStatus.RUNNING.value,
                    "read_count": 0, "stored_count": 0, "unchanged_count": 0, "quarantined_count": 0,
                },
            ).scalar_one()

    def _finish_batch(self, report: BatchReport, status: BatchStatus, note: str | None) -> None:
        report.status = status
        batch = ImportBatch.__table__
        with self._store.engine.begin() as connection:
            connection.execute(
                update(batch).where(batch.c.id == report.batch_id).values(status=status.value, finished_at=datetime.now(UTC), note=note)
            )
            record(connection, "data.import", f"batch:{report.batch_id}", {
                "source": report.source, "status": status.value, "read": report.read, "stored": report.stored,
                "unchanged": report.unchanged, "quarantined": report.quarantined, "note": note,
            })

    def _write_chunk(self, units: Sequence[PreparedUnit], report: BatchReport, *, allow_defer: bool) -> list[PreparedUnit]:
        now = datetime.now(UTC)
        batch_id = report.batch_id
        with self._store.engine.begin() as connection:
            chunk = _Chunk(connection, units, allow_defer)
            deferred: list[PreparedUnit] = []
            new_patients: list[str] = []
            stale: set[str] = set()
            new_versions: list[tuple[_Accepted, _Version]] = []
            quarantine: list[dict[str, Any]] = []
            counts: Counter[EntryOutcome] = Counter()
            rules: Counter[str] = Counter()
            for verdict in chunk.judge():
                if isinstance(verdict, _Deferred):
                    deferred.append(verdict.unit)
                    continue
                if isinstance(verdict, _Rejected):
                    counts[EntryOutcome.QUARANTINED] += 1
                    rules.update(issue.rule for issue in verdict.issues)
                    quarantine.append(_quarantine_row(verdict, batch_id, now))
                    continue
                outcome, version, touched = chunk.place(verdict)
                counts[outcome] += 1
                if version is None:
                    continue
                if verdict.pseudonym and chunk.is_new_patient(verdict.pseudonym):
                    new_patients.append(verdict.pseudonym)
                stale |= touched
                new_versions.append((verdict, version))
            _write(connection, new_patients, stale, chunk.demoted_row_ids(), new_versions, quarantine, batch_id, now)
            read = sum(counts.values())
            connection.execute(
                update(ImportBatch.__table__)
                .where(ImportBatch.id == batch_id)
                .values(
                    read_count=ImportBatch.read_count + read,
                    stored_count=ImportBatch.stored_count + counts[EntryOutcome.STORED],
                    unchanged_count=ImportBatch.unchanged_count + counts[EntryOutcome.UNCHANGED],
                    quarantined_count=ImportBatch.quarantined_count + counts[EntryOutcome.QUARANTINED],
                )
            )
        report.read += read
        report.stored += counts[EntryOutcome.STORED]
        report.unchanged += counts[EntryOutcome.UNCHANGED]
        report.quarantined += counts[EntryOutcome.QUARANTINED]
        report.quarantined_by_rule.update(rules)
        return deferred


def _quarantine_row(rejected: _Rejected, batch_id: int, now: datetime) -> dict[str, Any]:
    entry = rejected.entry
    return {
        "batch_id": batch_id,
        "location": entry.location,
        "raw": entry.raw,
        "resource_type": entry.type_field,
        "resource_id": entry.id_field[:64] if entry.id_field is not None else None,
        "reasons": orjson.dumps([issue.to_json() for issue in rejected.issues]).decode("utf-8"),
        "quarantined_at": now,
    }


def _write(
    connection: Connection,
    new_patients: list[str],
    stale: set[str],
    demoted: list[int],
    new_versions: list[tuple[_Accepted, _Version]],
    quarantine: list[dict[str, Any]],
    batch_id: int,
    now: datetime,
) -> None:
    """One chunk's writes, in dependency order: patients, demotions (before the new current
    versions, for the unique "one current version" index), resources, provenance, quarantine."""
    statements = _ChunkStatements.for_dialect(connection.dialect.name)
    if new_patients:
        bulk_insert(
            connection, PatientRecord.__table__, ("pseudonym", "first_batch_id", "needs_derivation"),
            [(pseudonym, batch_id, True) for pseudonym in new_patients],
        )
    already_known = stale.difference(new_patients)
    if already_known:
        connection.execute(statements.mark_stale, {"pseudonyms": sorted(already_known)})
    if demoted:
        connection.execute(statements.demote, {"row_ids": demoted})
    if new_versions:
        bulk_insert(
            connection,
            StoredResource.__table__,
            ("resource_type", "resource_id", "version_id", "last_updated", "content_hash", "body", "patient_pseudonym", "batch_id", "is_current", "withdrawn"),
            [
                (a.resource_type, a.resource_id, v.version_id, v.last_updated, v.content_hash, a.entry.body, a.pseudonym, batch_id, v.is_current, False)
                for a, v in new_versions
            ],
        )
        bulk_insert(
            connection,
            ProvenanceRecord.__table__,
            ("resource_type", "resource_id", "content_hash", "batch_id", "source", "recorded_at"),
            [(a.resource_type, a.resource_id, v.content_hash, batch_id, a.entry.location, now) for a, v in new_versions],
        )
    if quarantine:
        connection.execute(QuarantineRecord.__table__.insert(), quarantine)


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Runs the cyclic garbage collector less often while importing. Ingest allocates dozens of
    objects per resource and keeps a chunk of them alive, so with CPython's default threshold
    (a young-generation pass every 700 allocations, promoting the chunk into the older
    generations that later passes re-scan) the collector took about a fifth of an import's CPU.
    The pipeline creates no reference cycles of its own - its objects are freed by reference
    counting - so fewer passes lose nothing, and the collector still runs, keeping memory bounded."""
    previous = gc.get_threshold()
    if previous[0] == IMPORT_GC_THRESHOLD:  # an import in another thread raised it and restores it
        yield
        return
    gc.set_threshold(IMPORT_GC_THRESHOLD, *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)
