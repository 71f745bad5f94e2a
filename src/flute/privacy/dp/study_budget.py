"""The privacy cost of a whole federated study: every DP release of every task composes
(URS-6/7/8, NF-HUF-1).

A study's DP releases are Gaussian mechanisms that each touch every record of a hub: per
training task one release of preprocessing sums and one per gradient round. CV folds are
different trainings on overlapping rows, and fold membership itself depends on the records
(adding a record reshuffles a hub's stratified folds), so no parallel composition is claimed:
every release of every task is counted against every record. With the same noise multiplier z
(noise std / L2 sensitivity) for all K releases, the study is K-fold self-composition of the
Gaussian mechanism with multiplier z.

Accounting: the privacy-loss-distribution accountant (dp-accounting's PLD, pessimistic
estimate) is the reference and is what a hub charges; Renyi DP is computed alongside as a
cross-check (an upper bound that must not be below the PLD figure). Calibration finds the
smallest z (bisection over the PLD epsilon) that meets the study's target.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from flute.privacy.dp.accounting import (
    calibrate_noise_multiplier,
    calibrate_sgd_multiplier_with_full_batch,
    full_batch_and_sgd_epsilon,
    gaussian_sgd_cost,
)
from flute.privacy.dp.cost import DpCost

#: One release per round touches every record: no subsampling amplification is claimed.
FULL_BATCH = 1.0


@dataclass(frozen=True)
class StudyReleases:
    """How many Gaussian releases of a study touch each record: per training task its
    preprocessing sums and its rounds, plus once-per-study releases (e.g. a census)."""

    training_tasks: int
    rounds_per_task: int
    preprocessing_per_task: int = 1
    per_study: int = 0

    def __post_init__(self) -> None:
        if self.training_tasks < 1 or self.rounds_per_task < 1 or min(self.preprocessing_per_task, self.per_study) < 0:
            raise ValueError(f"a DP study needs >= 1 task and >= 1 round per task, got {self}")

    @property
    def count(self) -> int:
        return self.training_tasks * (self.rounds_per_task + self.preprocessing_per_task) + self.per_study


@dataclass(frozen=True)
class SgdSchedule:
    """DP-SGD training releases: each of a study's training releases (one hub's local run in a
    round) is `steps_per_release` Poisson-subsampled steps with inclusion probability
    `sampling_rate`."""

    steps_per_release: int
    sampling_rate: float


@dataclass(frozen=True)
class StudyPrivacyPlan:
    """The noise multiplier of the study's full-batch releases, the DP-SGD multiplier of its
    training steps when it trains by DP-SGD (`sgd`), and the study's total cost."""

    releases: StudyReleases
    noise_multiplier: float
    cost: DpCost
    sgd: SgdSchedule | None = None
    sgd_noise_multiplier: float | None = None


def plan_study(target_epsilon: float, delta: float, releases: StudyReleases) -> StudyPrivacyPlan:
    """The smallest noise multiplier whose K-fold composition is (target_epsilon, delta)-DP
    per record (PLD), with the cost a hub charges for the whole study."""
    multiplier = calibrate_noise_multiplier(target_epsilon, delta, FULL_BATCH, releases.count)
    cost = gaussian_sgd_cost(multiplier, FULL_BATCH, releases.count, delta, unit="record")
    if cost.details["epsilon_rdp"] < cost.epsilon:  # type: ignore[operator]
        raise ArithmeticError(f"RDP cross-check failed: RDP epsilon {cost.details['epsilon_rdp']} < PLD epsilon {cost.epsilon}")
    details = {
        **cost.details,
        "releases": releases.count,
        "training_tasks": releases.training_tasks,
        "rounds_per_task": releases.rounds_per_task,
        "target_epsilon": target_epsilon,
    }
    return StudyPrivacyPlan(releases, multiplier, replace(cost, mechanism="gaussian-full-batch-composition", details=details))


#: Share of a DP-SGD study's epsilon its full-batch releases (census, preprocessing) are
#: calibrated to on their own; the SGD steps get what the composition leaves.
FULL_BATCH_SHARE = 0.3


def plan_dp_sgd_study(target_epsilon: float, delta: float, releases: StudyReleases, sgd: SgdSchedule) -> StudyPrivacyPlan:
    """A study whose training releases are DP-SGD runs: its `per_study` full-batch releases get
    the multiplier that alone costs FULL_BATCH_SHARE * target_epsilon; the DP-SGD multiplier is
    then the smallest whose steps (training_tasks x rounds_per_task x steps_per_release, all
    composing: no parallel composition across CV folds) composed with them meet the target
    (PLD; RDP cross-check)."""
    if releases.preprocessing_per_task:
        raise ValueError("a DP-SGD study plan counts preprocessing in per_study (one study-level release)")
    full_batch = calibrate_noise_multiplier(FULL_BATCH_SHARE * target_epsilon, delta, FULL_BATCH, releases.per_study)
    steps = releases.training_tasks * releases.rounds_per_task * sgd.steps_per_release
    multiplier = calibrate_sgd_multiplier_with_full_batch(target_epsilon, delta, full_batch, releases.per_study, sgd.sampling_rate, steps)
    epsilon = full_batch_and_sgd_epsilon(full_batch, releases.per_study, multiplier, sgd.sampling_rate, steps, delta)
    epsilon_rdp = full_batch_and_sgd_epsilon(full_batch, releases.per_study, multiplier, sgd.sampling_rate, steps, delta, accountant="rdp")
    if epsilon_rdp < epsilon:
        raise ArithmeticError(f"RDP cross-check failed: RDP epsilon {epsilon_rdp} < PLD epsilon {epsilon}")
    details = {
        "accountant": "pld",
        "epsilon_rdp": epsilon_rdp,
        "full_batch_noise_multiplier": full_batch,
        "full_batch_releases": releases.per_study,
        "sgd_noise_multiplier": multiplier,
        "sampling_rate": sgd.sampling_rate,
        "sgd_steps": steps,
        "training_tasks": releases.training_tasks,
        "rounds_per_task": releases.rounds_per_task,
        "target_epsilon": target_epsilon,
    }
    cost = DpCost(epsilon, delta, "record", "gaussian-full-batch-and-poisson-subsampled-sgd", details)
    return StudyPrivacyPlan(releases, full_batch, cost, sgd, multiplier)
