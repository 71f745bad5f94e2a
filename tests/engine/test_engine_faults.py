"""Dropped hubs: a failing hub is retried; one that keeps failing is dropped and the study goes on
while `min_hubs` remain; below that it stops with TooFewHubs and a checkpoint from which a new run
resumes and finishes with exactly the weights of an uninterrupted run."""

from __future__ import annotations

from pathlib import Path

import pytest

from flute.engine.checkpoint import Checkpoint, CheckpointError
from flute.engine.grid import HubFault
from flute.engine.workflow import RuntimeBudgetExceeded, TooFewHubs

from .engine_inputs import make_spec, run_study, synthetic_hubs


def _same_weights(a, b) -> bool:  # type: ignore[no-untyped-def]
    return len(a.outcomes) == len(b.outcomes) and all(
        x.task == y.task and x.model.weights.tobytes() == y.model.weights.tobytes() for x, y in zip(a.outcomes, b.outcomes)
    )


def test_a_transient_failure_is_retried_without_changing_the_result() -> None:
    spec = make_spec()
    clean = run_study(synthetic_hubs(), spec)
    for kind in ("raise", "silent"):
        flaky = run_study(synthetic_hubs(), spec, faults={"hub-a": HubFault(kind, after=3, times=1)})  # type: ignore[arg-type]
        assert flaky.dropped_hubs == ()
        assert _same_weights(clean, flaky)


def test_a_hub_that_stays_away_is_dropped_and_the_study_continues() -> None:
    result = run_study(synthetic_hubs(), make_spec(evaluation={"cv_folds": 2}), faults={"hub-c": HubFault("silent", after=4)})
    assert result.dropped_hubs == ("hub-c",)
    assert result.final_model.trained_on == ("hub-a", "hub-b")
    assert {site.hub for site in result.of_kind("cv")[1].scores} == {"hub-a", "hub-b"}


def test_too_few_hubs_stops_with_a_checkpoint_and_the_study_resumes(tmp_path: Path) -> None:
    spec = make_spec(federation={"min_hubs": 3}, evaluation={"cv_folds": 2})
    uninterrupted = run_study(synthetic_hubs(), spec)
    fold0_rounds = uninterrupted.of_kind("cv")[0].model.rounds
    # census, fold-0 preprocessing + rounds + evaluation, fold-1 preprocessing + 2 rounds; then fail.
    after = 1 + 1 + fold0_rounds + 1 + 1 + 2
    checkpoint = tmp_path / "study.checkpoint"
    with pytest.raises(TooFewHubs) as stopped:
        run_study(synthetic_hubs(), spec, faults={"hub-b": HubFault("raise", after=after)}, checkpoint=checkpoint)
    assert stopped.value.checkpoint == checkpoint
    assert "the study needs at least 3" in str(stopped.value) and "resume from checkpoint" in str(stopped.value)

    saved = Checkpoint.load(checkpoint)
    assert [o.task.key for o in saved.completed.outcomes] == ["cv-fold-0"]
    assert saved.in_progress is not None and (saved.in_progress.task.key, saved.in_progress.round) == ("cv-fold-1", 2)

    resumed = run_study(synthetic_hubs(), spec, checkpoint=checkpoint)
    assert _same_weights(uninterrupted, resumed)
    assert resumed.of_kind("cv")[1].scores[0].summary.equals(uninterrupted.of_kind("cv")[1].scores[0].summary)


def test_a_checkpoint_of_another_spec_is_refused(tmp_path: Path) -> None:
    checkpoint = tmp_path / "study.checkpoint"
    run_study(synthetic_hubs(), make_spec(), checkpoint=checkpoint)
    with pytest.raises(CheckpointError, match="different study spec"):
        run_study(synthetic_hubs(), make_spec(seed=8), checkpoint=checkpoint)


def test_a_study_over_its_runtime_budget_stops(tmp_path: Path) -> None:
    """F-PIL-14: the declared maximum runtime is enforced by the coordinator."""
    spec = make_spec(resources={"max_runtime_s": 1e-9})
    with pytest.raises(RuntimeBudgetExceeded, match="exceeded resources.max_runtime_s"):
        run_study(synthetic_hubs(), spec, checkpoint=tmp_path / "study.checkpoint")
