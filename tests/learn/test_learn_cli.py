"""`flute study tune` over real hub homes (simulated pilot sites imported as FHIR): every trial is a
federated cross-validation; the best trial is printed; an invalid trial is refused up front."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from flute.cli.main import app
from simulated_hubs import simulated_hub_homes

from .zoo_specs import zoo_spec

VARIABLES = ["ageAtBiopsy", "psa", "prostateVolume", "pirads", "dre"]


@pytest.fixture(scope="module")
def hub_homes(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return simulated_hub_homes(tmp_path_factory.mktemp("pilot"), seed=5)


def _tune(tmp_path: Path, homes: list[Path], space: dict[str, object]) -> tuple[int, str]:
    spec = zoo_spec(
        {"name": "decision_tree", "min_rows_leaf": 10},
        cohort={"variables": VARIABLES},
        resources={"min_rows_per_hub": 20},
        tuning={"method": "grid", "trials": 2, "space": space},
    )
    path = tmp_path / "spec.json"
    spec.save(path)
    arguments = ["study", "tune", str(path)] + [part for home in homes for part in ("--hub", str(home))]
    result = CliRunner().invoke(app, arguments)
    return result.exit_code, result.output


def test_tune_prints_every_trial_and_the_best(tmp_path: Path, hub_homes: list[Path]) -> None:
    code, output = _tune(tmp_path, hub_homes, {"max_depth": {"choices": [1, 3]}})
    assert code == 0, output
    assert "max_depth=1" in output and "max_depth=3" in output
    assert "best: max_depth=" in output and "CV AUROC 0." in output


def test_tune_refuses_a_trial_outside_the_model_bounds(tmp_path: Path, hub_homes: list[Path]) -> None:
    code, output = _tune(tmp_path, hub_homes, {"max_depth": {"choices": [3, 99]}})
    assert code == 1
    assert "model.decision_tree.max_depth" in output
