"""`flute study`: spec refusals are printed with their reasons; a study runs end to end over real
hub homes (simulated pilot sites imported as FHIR), reading each hub's data from its own store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from flute.cli.main import app
from flute.engine.apps import RESULT_FILE
from flute.engine.flower import record_from_bytes
from flute.engine.result import StudyResult
from flute.learn.estimator import FederatedLogisticRegression
from flute.learn.preprocess import Standardiser, column_sums, log_transform
from flute.hub.node import open_hub
from simulated_hubs import simulated_hub_homes

from .engine_inputs import make_spec

VARIABLES = ("ageAtBiopsy", "psa", "prostateVolume", "pirads", "dre")
LOGGED = ("psa", "prostateVolume")


def test_validate_lists_every_refusal_reason(tmp_path: Path) -> None:
    spec = make_spec().model_dump(mode="json")
    spec["model"] = {"name": "deep_forest"}
    spec["telemetry"] = True
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    result = CliRunner().invoke(app, ["study", "validate", str(path)])
    assert result.exit_code == 1
    assert "'deep_forest' is not a vetted algorithm" in result.output and "telemetry: unknown option" in result.output
    make_spec().save(tmp_path / "good.toml")
    result = CliRunner().invoke(app, ["study", "validate", str(tmp_path / "good.toml")])
    assert result.exit_code == 0 and result.output.startswith("valid: engine-test")


@pytest.fixture(scope="module")
def hub_homes(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return simulated_hub_homes(tmp_path_factory.mktemp("pilot"), seed=3)


@pytest.fixture(scope="module")
def study_run(hub_homes: list[Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Result, Path]:
    """`flute study run` over the three hub homes, once for the module."""
    out = tmp_path_factory.mktemp("study")
    spec = make_spec(
        cohort={"variables": list(VARIABLES)},
        preprocessing={"log_transform": list(LOGGED)},
        model={"name": "logistic_regression", "l2": 0.01},
        resources={"min_rows_per_hub": 10},
        evaluation={"cv_folds": 2, "leave_one_hub_out": False, "score_bins": 2000},
    )
    spec.save(out / "study.json")
    args = ["study", "run", str(out / "study.json"), "--out", str(out / "report")]
    for home in hub_homes:
        args += ["--hub", str(home)]
    return CliRunner().invoke(app, args), out / "report"


@pytest.mark.slow
def test_study_run_over_hub_homes_matches_centralised_training(hub_homes: list[Path], study_run: tuple[Result, Path]) -> None:
    run, out = study_run
    assert "Performance per hospital and pooled" in run.output, run.output
    result = StudyResult.from_record(record_from_bytes((out / RESULT_FILE).read_bytes()))
    assert [c.hub for c in result.hubs] == ["chu-liege", "irst", "vhebron"]

    tables = []
    for home in hub_homes:
        with open_hub(home) as hub:
            tables.append(hub.store.study_table(VARIABLES))
    features = np.vstack([t.features for t in tables])
    labels = np.concatenate([t.labels for t in tables])
    standardiser = Standardiser.from_sums(VARIABLES, LOGGED, column_sums(log_transform(features, VARIABLES, LOGGED)))
    central = FederatedLogisticRegression(l2=0.01).fit(standardiser.transform(features), labels)
    np.testing.assert_allclose(result.final_model.weights, central.weights_, atol=1e-9)


@pytest.mark.slow
def test_study_run_writes_the_html_report(study_run: tuple[Result, Path]) -> None:
    run, out = study_run
    assert run.exit_code == 0, run.output
    assert (out / "report.html").is_file()
