"""Issue 7 acceptance: a federated, DP run over the three simulated hospitals (all 7 variables)
produces a versioned CSV and its evaluation report end to end from the CLI, every step a real
`flute` process (F-HUF-14, F-IMSD-1/3/12/15, NF-IMSD-7); a second run makes version 2."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from flute.synth.io import read_table
from flute.synth.workspace.store import Reference, SynthWorkspace

from hub_ledgers import set_budgets

from .conftest import ALL_VARIABLES, budget, real_split

STUDY = "synth-acceptance"
ROWS = 1000


def flute(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "flute.cli.main", *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"flute {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_federated_dp_run_gives_versioned_csv_and_report(hub_homes: list[Path], workspace_home: Path, tmp_path: Path) -> None:
    set_budgets(hub_homes, STUDY, 2.5)
    ws = ["--workspace", str(workspace_home), "--user", "alice"]
    hubs = [arg for home in hub_homes for arg in ("--hub", str(home))]
    train, holdout = real_split(hub_homes, ALL_VARIABLES.split(","), STUDY, tmp_path)

    for run in (1, 2):
        out = flute("synth", "train", *hubs, "--epsilon", "1", "--delta", "1e-6", "--study", STUDY, "--variables", ALL_VARIABLES, "--name", "pilot", *ws)
        assert f"generator saved as pilot:{run}" in out and "epsilon=1, delta=1e-06 per one patient record" in out
        out = flute("synth", "sample", "pilot", "--rows", str(ROWS), "--seed", str(run), "--name", "pilot-data", *ws)
        assert f"dataset pilot-data:{run}: {ROWS} rows" in out
        if run == 1:
            out = flute("synth", "evaluate", "pilot-data:1", "--train", str(train), "--holdout", str(holdout), *ws)
            assert re.search(r"TSTR LR 0\.\d+", out) and "datasets/pilot-data/v1/report.html" in out

    for home in hub_homes:  # every hospital's ledger paid both trainings, nothing more
        status = budget(home, STUDY)
        assert status.epsilon_spent == pytest.approx(2.0, rel=1e-6) and status.epsilon_reserved == 0

    with SynthWorkspace.open(workspace_home) as workspace:
        first, second = workspace.dataset(Reference("pilot-data", 1)), workspace.dataset(Reference("pilot-data"))
        generators = workspace.saved_generators()
        usage = {u.user: u for u in workspace.usage()}
    assert second.version == 2 and [g.version for g in generators] == [1, 2] and first.generator_id == generators[0].id
    for dataset in (first, second):
        assert (dataset.generator, dataset.study, dataset.epsilon, dataset.delta) == ("marginal", STUDY, pytest.approx(1.0), 1e-6)
        assert set(dataset.hubs) == {home.name for home in hub_homes} and dataset.hyperparameters["selection_share"] == 0.25
        assert hashlib.sha256(dataset.csv.read_bytes()).hexdigest() == dataset.csv_sha256
        assert hashlib.sha256(dataset.schema.read_bytes()).hexdigest() == dataset.schema_sha256
        frame, schema = read_table(dataset.csv)
        assert len(frame) == ROWS and schema.names == (*ALL_VARIABLES.split(","), "centre", "csPCa")
    assert first.evaluation is not None and set(first.evaluation) == {"fidelity", "utility", "privacy"}
    assert set(first.evaluation["fidelity"]["column_distance"]) == set(schema.names)
    assert first.report is not None and hashlib.sha256(first.report.read_bytes()).hexdigest() == first.report_sha256
    html = first.report.read_text(encoding="utf-8")
    assert html.count('src="data:image/png;base64,') == 4 and "http://" not in html and "https://" not in html
    assert "pilot-data version 1" in html and "TSTR" in html and second.evaluation is None and second.report is None
    assert first.csv_sha256 != second.csv_sha256 and first.csv.parent != second.csv.parent

    alice = usage["alice"]
    assert (alice.trainings, alice.rows_generated, alice.evaluations) == (2, 2 * ROWS, 1) and alice.cpu_seconds > 0

    listed = json.loads(flute("synth", "list", "--json", "--workspace", str(workspace_home)))
    assert [(d["name"], d["version"], d["report"] is not None) for d in listed["datasets"]] == [("pilot-data", 1, True), ("pilot-data", 2, False)]
    assert [j["state"] for j in listed["jobs"]] == ["succeeded", "succeeded"] and {"marginal", "slow-test"} <= {g["name"] for g in listed["generators"]}
