"""`flute hub` end to end through the installed console script (F-PIL-5, NF-PIL-3, NF-PIL-11)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .hub_inputs import IG_EXCLUDED, IG_INCLUDED, REPO_ROOT, find, patient_resources, write_ndjson

FLUTE = REPO_ROOT / ".venv" / "bin" / "flute"


def flute(*args: str | Path, expect: int = 0) -> str:
    done = subprocess.run([str(FLUTE), *map(str, args)], capture_output=True, text=True, timeout=120)
    assert done.returncode == expect, f"flute {args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout if expect == 0 else done.stderr


@pytest.mark.slow
def test_hub_cli_end_to_end(tmp_path: Path) -> None:
    home = tmp_path / "hub"
    assert "created" in flute("hub", "init", "--name", "hospital-a", "--home", home)
    bad = patient_resources("cli-2", isup=1)
    find(bad, "Observation-PSA")["valueQuantity"]["code"] = "mmol/L"
    extra = write_ndjson(tmp_path / "extra.ndjson", [*patient_resources("cli-1", isup=3), *bad])

    report = json.loads(flute("hub", "import", IG_INCLUDED, IG_EXCLUDED, extra, "--home", home, "--json"))
    assert report["status"] == "completed"
    assert report["read"] == report["stored"] + report["unchanged"] + report["quarantined"]
    assert report["quarantined"] == 1 and sum(report["quarantined_by_rule"].values()) >= 1
    text = flute("hub", "import", extra, "--home", home)
    assert "unchanged" in text and "quarantine reasons by rule" in text

    status = json.loads(flute("hub", "status", "--home", home, "--json"))
    assert (status["hub"], status["patients"], status["included"], status["labelled"]) == ("hospital-a", 4, 3, 2)
    assert status["cspca_prevalence"] == 0.5
    assert [b["status"] for b in status["batches"]] == ["completed", "completed"]

    entries = json.loads(flute("hub", "quarantine", "--home", home, "--json"))
    assert len(entries) == 2 and {e["resourceId"] for e in entries} == {"cli-2-Observation-PSA"}
    assert all(e["reasons"] and e["raw"].startswith("{") for e in entries)

    from flute.hub.pseudonym import Pseudonymizer
    from flute.hub.home import load_config, load_key

    pseudonym = Pseudonymizer(load_key(home), load_config(home).source_namespace).for_patient({"id": "cli-1"})
    assert "withdrew" in flute("hub", "withdraw", pseudonym, "--reason", "request", "--home", home)
    assert json.loads(flute("hub", "status", "--home", home, "--json"))["labelled"] == 1
    assert "already withdrawn" in flute("hub", "withdraw", pseudonym, "--home", home, expect=2)


def test_hub_cli_errors_are_clear(tmp_path: Path) -> None:
    assert "flute hub init" in flute("hub", "status", "--home", tmp_path / "none", expect=2)
    home = tmp_path / "hub"
    flute("hub", "init", "--name", "h", "--home", home)
    assert "not found" in flute("hub", "import", tmp_path / "missing.ndjson", "--home", home, expect=2)
    assert "psycopg 3" in flute("hub", "init", "--name", "x", "--db", "postgresql+pg8000://u@localhost/db", "--home", tmp_path / "pg", expect=2)
    refused = flute("hub", "init", "--name", "x", "--db", "postgresql+psycopg://u:secret@127.0.0.1:1/db", "--home", tmp_path / "pg", expect=2)
    assert "cannot use the hub database" in refused and "secret" not in refused
    assert "exactly one source" in flute("hub", "import", "--home", home, expect=2)

