"""Uses of hub data are audited where they happen (F-SRS-8, URS-10, F-PIL-21): an import, a
withdrawal, a budget change and a committed privacy charge each append an entry, with the
hub's key, in the same transaction; the CLI verifies the result."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from flute.cli.main import app
from flute.governance.audit import iter_entries, verify
from flute.governance.keys import load_node_keys
from flute.hub.ledger import PrivacyLedger
from flute.hub.node import open_hub
from flute.privacy.dp.cost import DpCost

REPO_ROOT = Path(__file__).resolve().parents[2]
IG_PATIENT = REPO_ROOT.parent / "shared" / "data" / "flute-ig-examples" / "EXP-S1-IncludedPatient.json"

runner = CliRunner()


def test_import_withdrawal_and_budget_are_audited(tmp_path: Path) -> None:
    home = tmp_path / "hub"
    assert runner.invoke(app, ["hub", "init", "--name", "hospital-a", "--home", str(home)]).exit_code == 0
    imported = runner.invoke(app, ["hub", "import", str(IG_PATIENT), "--home", str(home)])
    assert imported.exit_code == 0, imported.output
    assert runner.invoke(app, ["hub", "budget", "set", "study-1", "--dataset", "hospital-a", "--epsilon", "1", "--delta", "1e-6", "--home", str(home)]).exit_code == 0
    with open_hub(home) as hub:
        ledger = PrivacyLedger(hub.store.engine)
        reservation = ledger.reserve("study-1", "hospital-a", DpCost(0.25, 0.0, "record", "gaussian"), "mean psa")
        ledger.commit(reservation)
        with hub.store.engine.connect() as connection:
            pseudonym = connection.exec_driver_sql("SELECT pseudonym FROM patient").scalar_one()
    withdrawn = runner.invoke(app, ["hub", "withdraw", pseudonym, "--reason", "consent withdrawn", "--home", str(home)])
    assert withdrawn.exit_code == 0, withdrawn.output

    with open_hub(home) as hub, hub.store.engine.connect() as connection:
        entries = list(iter_entries(connection))
        result = verify(connection, key=load_node_keys(home).audit_key)
    assert result.intact, result.problems
    assert [entry.action for entry in entries] == ["data.import", "budget.set", "privacy.charge.commit", "withdrawal.create"]
    imported_entry, budget_entry, charge_entry, withdrawal_entry = entries
    assert imported_entry.details["status"] == "completed" and imported_entry.details["stored"] > 0
    assert budget_entry.target == "study:study-1" and budget_entry.details["epsilon"] == 1.0
    assert charge_entry.details["operation"] == "mean psa" and charge_entry.details["epsilon"] == 0.25
    assert withdrawal_entry.target == f"patient:{pseudonym}" and withdrawal_entry.details["reason"] == "consent withdrawn"
    assert all(entry.actor.startswith("local:") and entry.mac for entry in entries)

    out = tmp_path / "audit.jsonl"
    assert runner.invoke(app, ["audit", "export", "--home", str(home), "--out", str(out)]).exit_code == 0
    assert json.loads(out.read_text(encoding="utf-8").splitlines()[-1])["head"]["seq"] == 4
    assert runner.invoke(app, ["audit", "verify", "--home", str(home)]).exit_code == 0
