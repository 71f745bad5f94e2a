"""`flute hub budget`: the data owner sets budgets, sees charges, refunds an abandoned one."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from flute.cli.main import app
from flute.hub.ledger import PrivacyLedger
from flute.hub.node import init_hub, open_hub

from .ledger_support import DATASET, STUDY, cost


def flute(*args: str | Path, expect: int = 0) -> str:
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code == expect, f"flute {args} exited {result.exit_code}:\n{result.output}"
    return result.output


def test_budget_cli_shows_sets_and_releases(tmp_path: Path) -> None:
    home = tmp_path / "hub"
    init_hub(home, "hospital-a")
    assert "no privacy budgets set" in flute("hub", "budget", "--home", home)
    assert "epsilon total 2, spent 0, reserved 0, remaining 2" in flute(
        "hub", "budget", "set", STUDY, "--dataset", DATASET, "--epsilon", "2", "--delta", "1e-5", "--home", home
    )
    with open_hub(home) as hub:
        ledger = PrivacyLedger(hub.store.engine)
        ledger.commit(ledger.reserve(STUDY, DATASET, cost(0.5, 1e-6), "cohort statistics"))
        abandoned = ledger.reserve(STUDY, DATASET, cost(0.75, 1e-6), "training round 1")

    text = flute("hub", "budget", "--home", home)
    assert f"{STUDY} x {DATASET}: epsilon total 2, spent 0.5, reserved 0.75, remaining 0.75" in text
    assert f"#{abandoned.charge_id} reserved" in text and "'training round 1'" in text and "'cohort statistics'" in text

    shown = json.loads(flute("hub", "budget", "--home", home, "--json"))
    assert shown["budgets"][0]["epsilon_remaining"] == 0.75 and shown["budgets"][0]["delta_spent"] == 1e-6
    assert [charge["status"] for charge in shown["recent_charges"]] == ["reserved", "committed"]

    assert "--yes" in flute("hub", "budget", "release", str(abandoned.charge_id), "--home", home, expect=2)
    released = flute("hub", "budget", "release", str(abandoned.charge_id), "--home", home, "--yes")
    assert f"released charge {abandoned.charge_id}" in released and "remaining 1.5" in released
    assert "is released, not reserved" in flute("hub", "budget", "release", str(abandoned.charge_id), "--home", home, "--yes", expect=2)


def test_budget_cli_refuses_bad_input_clearly(tmp_path: Path) -> None:
    home = tmp_path / "hub"
    assert "no hub at" in flute("hub", "budget", "--home", home, expect=2)
    init_hub(home, "hospital-a")
    flute("hub", "budget", "set", STUDY, "--dataset", DATASET, "--epsilon", "1", "--delta", "1e-5", "--home", home)
    assert "budget delta must lie in [0, 1)" in flute(
        "hub", "budget", "set", STUDY, "--dataset", DATASET, "--epsilon", "1", "--delta", "2", "--home", home, expect=2
    )
    with open_hub(home) as hub:
        PrivacyLedger(hub.store.engine).reserve(STUDY, DATASET, cost(0.75), "training")
    assert "already charged epsilon=0.75" in flute(
        "hub", "budget", "set", STUDY, "--dataset", DATASET, "--epsilon", "0.5", "--delta", "1e-5", "--home", home, expect=2
    )
