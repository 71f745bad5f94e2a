"""Crash safety (NF-PIL-2/4, F-PIL-5): a real `flute hub import` killed with SIGKILL midway
leaves a consistent store, and running the import again completes it idempotently."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from flute.cohort.variables import VARIABLE_NAMES
from flute.hub.node import init_hub, open_hub
from flute.hub.summary import summarize

from .hub_inputs import REPO_ROOT, patient_resources, write_bundle, write_ndjson

FLUTE = REPO_ROOT / ".venv" / "bin" / "flute"
NDJSON_PATIENTS = 1500
TRANSACTION_PATIENTS = 150


def _tx_resources(k: int) -> list[dict[str, Any]]:
    return patient_resources(f"tx-{k}", isup=k % 4 or None)


def write_inputs(directory: Path) -> list[Path]:
    directory.mkdir()
    resources = [r for k in range(NDJSON_PATIENTS) for r in patient_resources(f"nd-{k}", psa=3.0 + k % 7, isup=k % 5 + 1)]
    paths = [write_ndjson(directory / "cohort.ndjson", resources)]
    for k in range(TRANSACTION_PATIENTS):
        paths.append(write_bundle(directory / f"tx-{k}.json", _tx_resources(k), "transaction"))
    return paths


def _import_command(home: Path, paths: list[Path]) -> list[str]:
    return [str(FLUTE), "hub", "import", *map(str, paths), "--home", str(home), "--chunk-size", "100"]


def input_resources() -> int:
    """How many resources `write_inputs` writes."""
    return NDJSON_PATIENTS * len(patient_resources("x")) + sum(len(_tx_resources(k)) for k in range(TRANSACTION_PATIENTS))


def kill_import_midway(home: Path, command: list[str], total: int) -> None:
    """Run the import `command` into `home` and SIGKILL it once a third of its `total` resources
    are read (watched through the running batch's read count)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    database = home / "hub.sqlite3"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with sqlite3.connect(database, timeout=30) as connection:
                row = connection.execute("SELECT read_count FROM import_batch WHERE status = 'running'").fetchone()
            if row and row[0] >= total // 3:
                break
            assert process.poll() is None, f"import ended before it could be killed: {process.stderr.read() if process.stderr else ''}"
            time.sleep(0.02)
        else:
            pytest.fail("the import made no progress within 120 s")
        assert process.poll() is None, "the import finished before the kill; make the input larger"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL


def check_invariants(database: Path) -> None:
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
        for batch_id, read, stored, unchanged, quarantined in connection.execute(
            "SELECT id, read_count, stored_count, unchanged_count, quarantined_count FROM import_batch"
        ).fetchall():
            assert read == stored + unchanged + quarantined
            rows = connection.execute("SELECT count(*) FROM fhir_resource WHERE batch_id = ?", (batch_id,)).fetchone()[0]
            assert rows == stored
            assert connection.execute("SELECT count(*) FROM quarantine WHERE batch_id = ?", (batch_id,)).fetchone()[0] == quarantined
        # No half transaction Bundle: each tx patient has all its resources or none.
        per_patient = Counter(
            "-".join(resource_id.split("-")[:2])
            for (resource_id,) in connection.execute("SELECT resource_id FROM fhir_resource WHERE resource_id LIKE 'tx-%'")
        )
        for patient, count in per_patient.items():
            expected = len(_tx_resources(int(patient.split("-")[1])))
            assert count == expected, f"transaction of {patient} is half stored ({count} of {expected})"
        # No study row without its Patient resource.
        orphans = connection.execute(
            "SELECT count(*) FROM study_row s WHERE NOT EXISTS (SELECT 1 FROM fhir_resource r "
            "WHERE r.patient_pseudonym = s.pseudonym AND r.resource_type = 'Patient' AND r.is_current)"
        ).fetchone()[0]
        assert orphans == 0


@pytest.mark.slow
def test_import_killed_midway_leaves_a_consistent_store_and_resumes(tmp_path: Path) -> None:
    paths = write_inputs(tmp_path / "input")
    home = tmp_path / "hub"
    init_hub(home, "crash")
    total = input_resources()
    kill_import_midway(home, _import_command(home, paths), total)
    check_invariants(home / "hub.sqlite3")

    done = subprocess.run(_import_command(home, paths), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    check_invariants(home / "hub.sqlite3")

    reference_home = tmp_path / "reference"
    init_hub(reference_home, "reference")
    with open_hub(home) as resumed, open_hub(reference_home) as reference:
        reference.import_paths(paths)
        first, second = summarize(resumed.store).batches
        assert (first.status, second.status) == ("failed", "completed")
        assert "interrupted" in (first.note or "")
        assert first.stored + second.stored == total and second.unchanged == first.stored
        assert second.quarantined == first.quarantined == 0
        got, want = summarize(resumed.store), summarize(reference.store)
        assert (got.patients, got.included, got.labelled, got.cspca_positive, got.current_resources) == (
            want.patients, want.included, want.labelled, want.cspca_positive, want.current_resources,
        )
        got_table, want_table = resumed.store.study_table(VARIABLE_NAMES), reference.store.study_table(VARIABLE_NAMES)
        assert sorted(map(tuple, got_table.features.tolist())) == sorted(map(tuple, want_table.features.tolist()))
        assert sorted(got_table.labels.tolist()) == sorted(want_table.labels.tolist())
