"""Ingest on two processes (F-PIL-5, NF-PIL-2/3/4): a forked helper prepares the input and
shares the derivation; the store must end exactly as with one process, on SQLite and on
PostgreSQL, and a failing helper must fail the batch loudly."""

from __future__ import annotations

import copy
import fcntl
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from flute.fhir.source import ImportUnit, SourceEntry
from flute.hub.home import LOCK_FILE
from flute.hub.models import BatchStatus, ImportBatch, PatientRecord, ProvenanceRecord, QuarantineRecord, StoredResource, StudyRowRecord
from flute.hub.node import Hub, init_hub, open_hub
from flute.hub.pipeline import DERIVE_RANGES, TWO_PROCESSES_MIN_BYTES, HelperFailed, chunks_of, large_input, worth_two_processes

from . import test_hub_crash as crash
from .hub_inputs import find, patient_resources, write_bundle, write_ndjson

CHUNK = 9  # small chunks: many transactions, deferred entries, ranges with few patients


def _mixed_inputs(directory: Path) -> list[Path]:
    """Everything the import semantics distinguish: valid patients, invalid and unreadable
    lines, entries whose Patient comes later in the batch, a failing and a passing
    transaction, a batch Bundle with a DELETE, and a newer version of a stored resource."""
    directory.mkdir()
    resources: list[Any] = []
    for k in range(12):
        resources.extend(patient_resources(f"p-{k}", psa=2.0 + k, isup=k % 5 + 1 if k % 3 else None))
    find(resources, "p-3-Observation-PIRADS")["valueInteger"] = 9  # out of range: quarantined
    late = patient_resources("late-1")
    ndjson = write_ndjson(directory / "cohort.ndjson", [*resources, "{not json", *late[1:], late[0]])
    failing = patient_resources("tx-bad")
    find(failing, "Observation-PSA")["valueQuantity"]["code"] = "furlongs"
    newer = copy.deepcopy(find(resources, "p-1-Observation-PSA"))
    newer["meta"] = {"versionId": "2"}
    newer["valueQuantity"]["value"] = 11.5
    batch = write_bundle(directory / "batch.json", [newer, *patient_resources("b-1")], "batch")
    document = json.loads(batch.read_text())
    document["entry"].append({"request": {"method": "DELETE", "url": "Observation/p-2-Observation-PSA"}})
    batch.write_text(json.dumps(document))
    return [
        ndjson,
        write_bundle(directory / "tx-ok.json", patient_resources("tx-ok"), "transaction"),
        write_bundle(directory / "tx-bad.json", failing, "transaction"),
        batch,
    ]


def _store_contents(hub: Hub) -> dict[str, Any]:
    """The store's content without its surrogate keys and timestamps; pseudonyms (keyed per
    hub) replaced by the id of their Patient."""
    stored, provenance, quarantine = StoredResource.__table__.c, ProvenanceRecord.__table__.c, QuarantineRecord.__table__.c
    row, patient, batch = StudyRowRecord.__table__.c, PatientRecord.__table__.c, ImportBatch.__table__.c
    with hub.store.engine.connect() as connection:
        patient_of = dict(connection.execute(select(stored.patient_pseudonym, stored.resource_id).where(stored.resource_type == "Patient")).all())

        def rows(query: Any) -> list[tuple[Any, ...]]:
            return sorted(tuple(f"Patient/{patient_of[v]}" if v in patient_of else v for v in r) for r in connection.execute(query))

        return {
            "resources": rows(select(stored.resource_type, stored.resource_id, stored.content_hash, stored.body, stored.patient_pseudonym, stored.is_current, stored.version_id)),
            "provenance": rows(select(provenance.resource_type, provenance.resource_id, provenance.content_hash, provenance.source)),
            "quarantine": rows(select(quarantine.location, quarantine.raw, quarantine.resource_type, quarantine.resource_id, quarantine.reasons)),
            "study_rows": rows(select(*(c for c in row if c.name not in ("updated_at", "derived_from_batch"))).select_from(StudyRowRecord.__table__)),
            "patients": rows(select(patient.pseudonym, patient.needs_derivation, patient.withdrawn_at)),
            "batches": rows(select(batch.status, batch.read_count, batch.stored_count, batch.unchanged_count, batch.quarantined_count)),
        }


def _import_twice(tmp_path: Path, db_url: str | None, name: str, two_processes: bool, paths: list[Path]) -> dict[str, Any]:
    home = tmp_path / name
    init_hub(home, "hospital", db_url)
    with open_hub(home) as hub:
        first = hub.import_paths(paths, chunk_entries=CHUNK, two_processes=two_processes)
        again = hub.import_paths(paths, chunk_entries=CHUNK, two_processes=two_processes)  # idempotent
        assert again.stored == 0 and again.unchanged + again.quarantined == again.read
        return {"reports": [_report_without_ids(first), _report_without_ids(again)], **_store_contents(hub)}


def _report_without_ids(report: Any) -> dict[str, Any]:
    return {k: v for k, v in report.to_json().items() if k not in ("batch", "source")}


@pytest.mark.slow
def test_two_processes_store_exactly_what_one_process_stores(tmp_path: Path, db_url: str | None, request: pytest.FixtureRequest) -> None:
    paths = _mixed_inputs(tmp_path / "input")
    second_db = request.getfixturevalue("postgres_server").create_database() if db_url else None
    one = _import_twice(tmp_path, db_url, "one", False, paths)
    two = _import_twice(tmp_path, second_db, "two", True, paths)
    assert one == two
    first = one["reports"][0]
    # The input really exercises each path the pipeline must keep.
    assert first["quarantined_by_rule"].keys() >= {"reader.json", "transaction.rolled-back", "import.delete-unsupported"}
    assert first["patients_derived"] == 15 and first["status"] == "completed"
    assert any(version == "2" for *_, version in two["resources"])


def _failing_units(units: list[ImportUnit]) -> Iterator[ImportUnit]:
    yield from units
    raise OSError("the export share went away")


def test_a_failing_helper_fails_the_batch_with_its_traceback(hub: Hub, tmp_path: Path) -> None:
    from flute.fhir.readers import iter_units

    units = list(iter_units([write_ndjson(tmp_path / "p.ndjson", patient_resources("p-1"))]))
    with pytest.raises(HelperFailed, match="the export share went away"):
        hub.import_units(_failing_units(units), "broken-source", chunk_entries=CHUNK, two_processes=True)
    with hub.store.engine.connect() as connection:
        status, note = connection.execute(select(ImportBatch.status, ImportBatch.note)).one()
    assert status == BatchStatus.FAILED.value and "OSError" in note
    # The hub is usable right away: no helper holds the import lock.
    assert hub.import_units(iter(units), "retry", two_processes=True).status == BatchStatus.COMPLETED


@given(st.text(max_size=80))
def test_derive_ranges_cover_every_pseudonym_exactly_once(pseudonym: str) -> None:
    holding = [r for r in DERIVE_RANGES if (r.low is None or pseudonym >= r.low) and (r.high is None or pseudonym < r.high)]
    assert len(holding) == 1


def test_two_processes_only_for_large_input(tmp_path: Path) -> None:
    small = tmp_path / "small.ndjson"
    small.write_bytes(b"{}\n")
    large = tmp_path / "large.ndjson"
    large.write_bytes(b" " * TWO_PROCESSES_MIN_BYTES)
    assert not large_input([small]) and large_input([small, large])
    assert not worth_two_processes([small])


@given(st.lists(st.integers(min_value=0, max_value=5), max_size=60), st.integers(min_value=1, max_value=12), st.none() | st.integers(min_value=1, max_value=12))
def test_chunks_keep_every_unit_in_order_and_ramp_up_to_the_limit(sizes: list[int], max_entries: int, first: int | None) -> None:
    units = [ImportUnit("s", False, tuple(SourceEntry(f"s:{i}:{k}", b"", None) for k in range(size))) for i, size in enumerate(sizes)]
    chunks = list(chunks_of(units, max_entries, first))
    assert [unit for chunk in chunks for unit in chunk] == units
    limit = min(first or max_entries, max_entries)
    for chunk in chunks[:-1]:  # each full chunk reached its limit with its last unit, not before
        counted = [max(1, len(unit.entries)) for unit in chunk]
        assert sum(counted) >= limit > sum(counted[:-1])
        limit = min(2 * limit, max_entries)


_IMPORT_ON_TWO_PROCESSES = (
    "import sys; from pathlib import Path; from flute.hub.node import open_hub\n"
    "with open_hub(Path(sys.argv[1])) as hub:\n"
    "    hub.import_paths([Path(p) for p in sys.argv[2:]], chunk_entries=100, two_processes=True)\n"
)


@pytest.mark.slow
def test_importer_killed_midway_takes_its_helper_along_and_the_store_stays_consistent(tmp_path: Path) -> None:
    paths = crash.write_inputs(tmp_path / "input")
    home = tmp_path / "hub"
    init_hub(home, "crash")
    crash.kill_import_midway(home, [sys.executable, "-c", _IMPORT_ON_TWO_PROCESSES, str(home), *map(str, paths)], crash.input_resources())
    # The helper inherited the import lock; it is free again only once the helper is gone too.
    with open(home / LOCK_FILE, "a+") as lock:
        deadline = time.monotonic() + 10
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                assert time.monotonic() < deadline, "the helper outlived its importer"
                time.sleep(0.05)
        fcntl.flock(lock, fcntl.LOCK_UN)
    crash.check_invariants(home / "hub.sqlite3")
    with open_hub(home) as hub:
        resumed = hub.import_paths(paths, chunk_entries=100, two_processes=True)
    assert resumed.status == BatchStatus.COMPLETED and resumed.quarantined == 0
    crash.check_invariants(home / "hub.sqlite3")
