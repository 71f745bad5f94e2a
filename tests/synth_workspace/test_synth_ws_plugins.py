"""The generator plugin interface (F-IMSD-17, F-IMSD-15): a workspace plugs in a generator by
module; the registry refuses name clashes; saved generators are re-loaded by their plugin and
sampled again; the marginal plugin checks its hyperparameters."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from flute.cli.main import app
from flute.synth.conditions import holds, parse_conditions
from flute.synth.generators import GeneratorError, TrainSettings, generator, generator_names, register
from flute.synth.io import read_table
from flute.synth.marginal_plugin import MODEL_FILE, MarginalPlugin
from flute.synth.workspace.home import WorkspaceError
from flute.synth.workspace.store import Reference, SynthWorkspace

from .slow_plugin import NAME as SLOW
from .slow_plugin import SlowPlugin

RUNNER = CliRunner()


def invoke(home: Path, *args: str, code: int = 0) -> str:
    result = RUNNER.invoke(app, ["synth", *args, "--workspace", str(home)])
    assert result.exit_code == code, result.output
    return result.output


def test_a_plugged_in_generator_trains_saves_and_samples(hub_homes: list[Path], workspace_home: Path) -> None:
    hubs = [arg for home in hub_homes for arg in ("--hub", str(home))]
    out = invoke(workspace_home, "train", *hubs, "--generator", SLOW, "--non-dp", "--variables", "ageAtBiopsy,psa", "--set", "steps=3", "--name", "slow")
    assert "[ 67%] step 3 of 3" in out and "generator saved as slow:1" in out
    listed = json.loads(invoke(workspace_home, "list", "--json"))
    assert {"name": SLOW, "description": SlowPlugin.description} in listed["generators"]
    saved_entry = listed["saved_generators"][0]
    assert (saved_entry["name"], saved_entry["version"], saved_entry["generator"], saved_entry["epsilon"]) == ("slow", 1, SLOW, None)
    assert saved_entry["hyperparameters"] == {"steps": 3, "step_seconds": 0.05, "save_seconds": 0.0, "marker_dir": None}

    out = invoke(workspace_home, "sample", "slow", "--rows", "300", "--where", "cspca=1,age>70", "--seed", "3")
    assert "dataset slow:1: 300 rows" in out and "rows meeting them 100.0%" in out
    with SynthWorkspace.open(workspace_home) as workspace:
        saved, fitted = workspace.load_generator(Reference("slow", 1))  # re-loaded by its plugin (F-IMSD-15)
        dataset = workspace.dataset(Reference("slow"))
    frame, schema = read_table(dataset.csv)
    assert (saved.directory / MODEL_FILE).is_file() and fitted.schema == schema
    assert holds(parse_conditions("cspca=1,age>70", schema), frame).all() and dataset.conditions == "cspca=1,age>70"
    again = fitted.sample(300, np.random.default_rng(3), parse_conditions("cspca=1,age>70", fitted.schema)).frame
    assert again.astype("string").equals(frame.astype("string"))  # the saved generator reproduces its dataset


def test_registry_refuses_clashes_and_names_the_known(workspace_home: Path) -> None:
    SynthWorkspace.open(workspace_home).close()
    assert {"marginal", SLOW} <= set(generator_names())
    with pytest.raises(GeneratorError, match="a generator named 'marginal' is already registered"):
        register(MarginalPlugin())
    with pytest.raises(GeneratorError, match="unknown generator 'nope'; known: .*marginal"):
        generator("nope")
    (workspace_home / "workspace.toml").write_text('[workspace]\nplugins = ["no_such_generator_module"]\n', encoding="utf-8")
    with pytest.raises(WorkspaceError, match="plugin module 'no_such_generator_module' cannot be imported"):
        SynthWorkspace.open(workspace_home)


@pytest.mark.parametrize(
    ("hyperparameters", "epsilon", "message"),
    [
        ({"selection_share": 1.5}, 1.0, r"selection_share must lie in \[0, 1\)"),
        ({"tolerated_dropouts": -1}, 1.0, "tolerated_dropouts must be an integer >= 0"),
        ({"tree": ["psa-pirads"]}, None, "tree must be a list of \\[column, column\\] pairs"),
        ({"depth": 3}, None, r"unknown hyperparameter\(s\) \['depth'\]"),
    ],
)
def test_marginal_plugin_checks_hyperparameters(hyperparameters: dict[str, object], epsilon: float | None, message: str) -> None:
    with pytest.raises(GeneratorError, match=message):
        MarginalPlugin().config(TrainSettings("s", epsilon, 1e-6, hyperparameters))


def test_marginal_plugin_load_refuses_what_it_did_not_save(tmp_path: Path) -> None:
    with pytest.raises(GeneratorError, match="no model.json; not a saved marginal generator"):
        MarginalPlugin().load(tmp_path)
    (tmp_path / MODEL_FILE).write_text('{"format": "other"}', encoding="utf-8")
    with pytest.raises(GeneratorError, match="expected format 'flute-synth-marginal/1'"):
        MarginalPlugin().load(tmp_path)
