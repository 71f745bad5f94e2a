"""The workspace store's guarantees (F-IMSD-12): versions never shared, a crash's leftover folder
never mistaken for a registered version, files checked against their registered SHA-256."""

from __future__ import annotations

from pathlib import Path

import pytest

from flute.synth.workspace.home import WorkspaceError
from flute.synth.workspace.jobs import Jobs, TrainRequest
from flute.synth.workspace.service import evaluate_dataset, sample_dataset
from flute.synth.workspace.store import Reference, SynthWorkspace


def trained(workspace: SynthWorkspace, homes: list[Path], name: str) -> None:
    jobs = Jobs(workspace)
    job = jobs.submit("erin", TrainRequest(tuple(str(h) for h in homes), ("psa", "pirads"), "synth-store", "marginal", name))
    assert jobs.run(job.id).saved_generator == f"{name}:1"


def test_a_crash_leftover_is_replaced_and_versions_count_up(hub_homes: list[Path], workspace_home: Path) -> None:
    with SynthWorkspace.open(workspace_home) as workspace:
        trained(workspace, hub_homes, "g")
        leftover = workspace_home / "datasets" / "d" / "v1"
        leftover.mkdir(parents=True)
        (leftover / "data.csv").write_text("half,written\n", encoding="utf-8")  # moved in, row never committed
        with pytest.raises(WorkspaceError, match="no dataset 'd'"):
            workspace.dataset(Reference("d"))
        first = sample_dataset(workspace, Reference("g"), 50, user="erin", name="d").dataset
        second = sample_dataset(workspace, Reference.parse("g:1"), 50, user="erin", name="d").dataset
        assert (first.version, second.version) == (1, 2) and first.csv == leftover / "data.csv"
        assert first.csv.read_text(encoding="utf-8").startswith("psa,pirads,centre,csPCa")
        assert not list((workspace_home / "staging").iterdir())
        with pytest.raises(WorkspaceError, match="no dataset 'd:3'"):
            workspace.dataset(Reference.parse("d:3"))
        with pytest.raises(WorkspaceError, match="dataset name '../x' is not allowed"):
            sample_dataset(workspace, Reference("g"), 5, user="erin", name="../x")


def test_a_changed_dataset_file_is_refused(hub_homes: list[Path], workspace_home: Path, tmp_path: Path) -> None:
    with SynthWorkspace.open(workspace_home) as workspace:
        trained(workspace, hub_homes, "h")
        dataset = sample_dataset(workspace, Reference("h"), 40, user="erin").dataset
        with dataset.csv.open("a", encoding="utf-8") as csv:
            csv.write("60,3,irst,1\n")
        with pytest.raises(WorkspaceError, match="no longer matches the SHA-256 registered for h:1"):
            evaluate_dataset(workspace, Reference("h"), dataset.csv, dataset.csv, user="erin")


def test_an_exported_csv_is_evaluated_in_file_mode_with_a_report(hub_homes: list[Path], workspace_home: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from flute.cli.main import app

    from .conftest import real_split

    runner = CliRunner()
    with SynthWorkspace.open(workspace_home) as workspace:
        trained(workspace, hub_homes, "k")
    exported = tmp_path / "exported.csv"
    sampled = runner.invoke(app, ["synth", "sample", "k", "--rows", "200", "--out", str(exported), "--workspace", str(workspace_home)])
    assert sampled.exit_code == 0 and "dataset k:1: 200 rows" in sampled.output and exported.with_suffix(".schema.json").is_file()
    train, holdout = real_split(hub_homes, ["psa", "pirads"], "synth-store", tmp_path)
    report = tmp_path / "report.html"
    evaluated = runner.invoke(app, ["synth", "evaluate", str(exported), "--train", str(train), "--holdout", str(holdout), "--report", str(report)])
    assert evaluated.exit_code == 0, evaluated.output
    assert f"report: {report}" in evaluated.output and report.read_text(encoding="utf-8").count("data:image/png;base64,") == 4
    refused = runner.invoke(app, ["synth", "train", "--hub", str(hub_homes[0]), "--non-dp", "--out", str(tmp_path / "m.json"), "--workspace", str(workspace_home)])
    assert refused.exit_code == 2 and "--out writes a model file without a workspace" in refused.output
