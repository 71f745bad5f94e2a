"""Training jobs in their own processes (F-IMSD-16, NF-IMSD-5): two at once with progress, one
cancelled (its ledger never charged), and a job killed while saving its generator leaves no
half-registered artefact."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from flute.synth.workspace.jobs import JobInfo, Jobs, JobState, TrainRequest
from flute.synth.workspace.store import Reference, SynthWorkspace

from hub_ledgers import set_budgets

from .conftest import budget
from .slow_plugin import NAME as SLOW, TRAINING_MARKER

VARIABLES = ("ageAtBiopsy", "psa", "pirads")


def request(homes: list[Path], study: str, name: str, epsilon: float | None, **hyperparameters: object) -> TrainRequest:
    return TrainRequest(tuple(str(h) for h in homes), VARIABLES, study, SLOW, name, epsilon, 1e-6, hyperparameters)


def until(condition: object, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.slow
def test_two_jobs_at_once_one_cancelled(hub_homes: list[Path], workspace_home: Path) -> None:
    set_budgets(hub_homes, "synth-jobs", 3.0)
    with SynthWorkspace.open(workspace_home) as workspace:
        jobs = Jobs(workspace)
        kept = jobs.submit("alice", request(hub_homes, "synth-jobs", "kept", 1.0, steps=60, step_seconds=0.1))
        dropped = jobs.submit("bob", request(hub_homes, "synth-jobs", "dropped", 1.0, steps=600, step_seconds=0.1))
        processes = [jobs.start(kept.id), jobs.start(dropped.id)]

        def both_progressing() -> bool:
            states = [jobs.job(j.id) for j in (kept, dropped)]
            return all(s.state is JobState.RUNNING and s.progress > 0 for s in states)

        until(both_progressing, "both jobs to run and report progress")  # several jobs at once
        running = {info.id: info for info in jobs.jobs()}
        assert running[kept.id].message.startswith("step ") and running[dropped.id].state is JobState.RUNNING
        assert jobs.cancel(dropped.id).cancel_requested
        finished = {job.id: jobs.wait(job.id, timeout_s=120, poll_s=0.2) for job in (kept, dropped)}
        for process in processes:
            assert process.wait(timeout=30) in (0, 1)

        assert finished[kept.id].state is JobState.SUCCEEDED and finished[kept.id].saved_generator == "kept:1"
        assert finished[dropped.id].state is JobState.CANCELLED and finished[dropped.id].saved_generator is None
        assert [g.name for g in workspace.saved_generators()] == ["kept"]
        usage = {u.user: u for u in workspace.usage()}
        assert usage["alice"].trainings == 1 and "bob" not in usage  # a cancelled training is not metered as one
    for home in hub_homes:  # only the finished training was charged
        assert budget(home, "synth-jobs").epsilon_spent == pytest.approx(1.0, rel=1e-6)


@pytest.mark.slow
def test_job_killed_while_saving_registers_nothing(hub_homes: list[Path], workspace_home: Path) -> None:
    with SynthWorkspace.open(workspace_home) as workspace:
        jobs = Jobs(workspace)
        job = jobs.submit("carol", request(hub_homes, "synth-crash", "crashy", None, steps=1, step_seconds=0.0, save_seconds=60.0))
        process = jobs.start(job.id)
        staging = workspace_home / "staging"
        until(lambda: any((folder / "model.json").exists() for folder in staging.glob("*")), "the generator's files to be written")
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

        info: JobInfo = jobs.job(job.id)
        assert info.state is JobState.FAILED and "ended without finishing" in (info.error or "")
        assert workspace.saved_generators() == [] and not (workspace_home / "generators").exists()
        assert workspace.usage() == []
        with pytest.raises(Exception, match="no saved generator 'crashy'"):
            workspace.saved_generator(Reference("crashy"))


def test_cancelling_a_queued_job_and_a_job_that_cannot_run_twice(hub_homes: list[Path], workspace_home: Path) -> None:
    with SynthWorkspace.open(workspace_home) as workspace:
        jobs = Jobs(workspace)
        queued = jobs.submit("dave", request(hub_homes, "synth-queue", "never", None, marker_dir=str(workspace_home)))
        assert jobs.cancel(queued.id).state is JobState.CANCELLED
        with pytest.raises(Exception, match="is cancelled, not queued"):
            jobs.run(queued.id)
        assert not (workspace_home / TRAINING_MARKER).exists()  # it never started training

        failing = jobs.submit("dave", request(hub_homes, "synth-queue", "bad", None, steps="many"))
        info = jobs.run(failing.id)
        assert info.state is JobState.FAILED and "TypeError" in (info.error or "") and workspace.saved_generators() == []


@pytest.mark.slow
def test_background_job_from_the_cli_listed_cancelled_and_awaited(hub_homes: list[Path], workspace_home: Path) -> None:
    from typer.testing import CliRunner

    from flute.cli.main import app

    runner = CliRunner()
    ws = ["--workspace", str(workspace_home)]
    hubs = [arg for home in hub_homes for arg in ("--hub", str(home))]
    started = runner.invoke(app, ["synth", "train", *hubs, "--generator", SLOW, "--non-dp", "--variables", "psa", "--set", "steps=600", "--set", "step_seconds=0.1", "--background", *ws])
    assert started.exit_code == 0, started.output
    job_id = started.output.split()[1]
    with SynthWorkspace.open(workspace_home) as workspace:
        until(lambda: Jobs(workspace).job(job_id).progress > 0, "the background job to report progress")
    listed = runner.invoke(app, ["synth", "list", *ws]).output
    assert f"{job_id}  " in listed and "running" in listed and "step " in listed
    cancelled = runner.invoke(app, ["synth", "cancel", job_id, *ws])
    assert cancelled.exit_code == 0 and "cancellation requested" in cancelled.output
    waited = runner.invoke(app, ["synth", "wait", job_id, "--timeout", "60", *ws])
    assert waited.exit_code == 1 and f"job {job_id} cancelled" in waited.output
    unknown = runner.invoke(app, ["synth", "cancel", "0123", *ws])
    assert unknown.exit_code == 2 and "no job '0123'" in unknown.output
