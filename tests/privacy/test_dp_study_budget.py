"""Whole-study DP accounting (URS-6/7/8, NF-HUF-1): calibration meets the target under PLD, RDP is
the looser cross-check, and every release of every task counts."""

from __future__ import annotations

import pytest

from flute.privacy.dp.accounting import gaussian_sgd_epsilon
from flute.privacy.dp.study_budget import StudyReleases, plan_study


def test_releases_count_every_task_round_and_once_per_study_release() -> None:
    assert StudyReleases(training_tasks=6, rounds_per_task=3, preprocessing_per_task=0, per_study=5).count == 23
    assert StudyReleases(training_tasks=2, rounds_per_task=4).count == 10
    with pytest.raises(ValueError, match="at least|>= 1"):
        StudyReleases(training_tasks=0, rounds_per_task=3)


def test_plan_meets_the_target_tightly_and_rdp_is_looser() -> None:
    plan = plan_study(1.0, 1e-5, StudyReleases(6, 3, 0, 5))
    assert 0.99 <= plan.cost.epsilon <= 1.0
    assert plan.cost.details["epsilon_rdp"] >= plan.cost.epsilon  # type: ignore[operator]
    assert plan.cost.unit == "record" and plan.cost.delta == 1e-5
    # slightly less noise would exceed the target: the multiplier is (nearly) the smallest
    assert gaussian_sgd_epsilon(plan.noise_multiplier * 0.99, 1.0, plan.releases.count, 1e-5) > 1.0


def test_more_releases_need_more_noise() -> None:
    few, many = plan_study(1.0, 1e-5, StudyReleases(1, 2)), plan_study(1.0, 1e-5, StudyReleases(6, 10))
    assert many.noise_multiplier > few.noise_multiplier * 2
