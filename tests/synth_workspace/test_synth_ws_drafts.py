"""Hyperparameter drafts (F-IMSD-2/10): saved per user and generator, applied later with
`train --from-draft` (explicit `--set` still wins), reset to the defaults."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from flute.cli.main import app
from flute.synth.workspace.store import Reference, SynthWorkspace

RUNNER = CliRunner()


def invoke(home: Path, user: str, *args: str, code: int = 0) -> str:
    result = RUNNER.invoke(app, ["synth", *args, "--workspace", str(home), "--user", user])
    assert result.exit_code == code, result.output
    return result.output


def test_drafts_saved_applied_and_reset(hub_homes: list[Path], workspace_home: Path) -> None:
    hubs = [arg for home in hub_homes for arg in ("--hub", str(home))]
    train = ("train", *hubs, "--non-dp", "--variables", "psa,pirads", "--study", "synth-drafts")
    assert "draft: none" in invoke(workspace_home, "alice", "drafts", "show", "marginal")

    invoke(workspace_home, "alice", "drafts", "save", "marginal", "--set", "selection_share=0.4")
    saved = invoke(workspace_home, "alice", "drafts", "save", "marginal", "--set", "tolerated_dropouts=1")
    assert json.loads(saved.partition(": ")[2]) == {"selection_share": 0.4, "tolerated_dropouts": 1}  # merged
    assert "draft: none" in invoke(workspace_home, "bob", "drafts", "show", "marginal")  # per user
    refused = invoke(workspace_home, "alice", "drafts", "save", "marginal", "--set", "learning_rate=0.1", code=2)
    assert "unknown hyperparameter(s) ['learning_rate']" in refused

    invoke(workspace_home, "alice", *train, "--name", "plain")
    invoke(workspace_home, "alice", *train, "--name", "drafted", "--from-draft", "--set", "tolerated_dropouts=0")
    with SynthWorkspace.open(workspace_home) as workspace:
        plain, drafted = workspace.saved_generator(Reference("plain")), workspace.saved_generator(Reference("drafted"))
    assert plain.hyperparameters == {"tree": None, "selection_share": 0.25, "tolerated_colluders": 0, "tolerated_dropouts": 0}
    assert drafted.hyperparameters == {"tree": None, "selection_share": 0.4, "tolerated_colluders": 0, "tolerated_dropouts": 0}

    reset = invoke(workspace_home, "alice", "drafts", "reset", "marginal")
    assert '"selection_share": 0.25' in reset and "draft: none" in invoke(workspace_home, "alice", "drafts", "show", "marginal")
    assert "alice has no saved draft for generator 'marginal'" in invoke(workspace_home, "alice", *train, "--from-draft", code=2)
