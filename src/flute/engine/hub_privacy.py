"""Record-level differential privacy at the hub: the hub, not the coordinator, plans, charges and
adds the noise (URS-6/7/8, NF-HUF-1, NF-PIL-5).

Per study run (identified by the coordinator's run nonce), a hub:
1. computes the study's cost itself from ITS copy of the spec (`study_plan`: every task's
   preprocessing and gradient rounds plus the census compose; PLD accounting, RDP cross-check);
2. RESERVES that cost in its PrivacyLedger before computing anything (the census is the first
   release) - an insufficient budget refuses the study with the ledger's message;
3. COMMITS the reservation when its first release is handed back for sending (from then on the
   charge is spent for good; a crash in between leaves it reserved, i.e. still charged);
4. counts its releases in the run and refuses any beyond the plan (a coordinator cannot buy more
   rounds than were charged).
Noise: each release is a sum of per-record rows with bounded L2 norm plus this hub's Gaussian
share (`flute.privacy.dp.mechanisms`): distributed (the SUM carries the full noise, with
secure aggregation) or local (each hub adds the full noise), per the spec's `pets.dp.noise`.
Ledger dataset: the hub's name (one cohort dataset per hub).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import numpy as np

from flute.engine.flower import ConfigRecord, RecordDict
from flute.engine.sources import HUB_HOME_KEY
from flute.engine import tree_privacy
from flute.engine.model_specs import TREE_SPECS, MlpSpec
from flute.engine.spec import DpOptions, StudySpec
from flute.learn.mlp import DpSgd, dp_sgd_steps_per_epoch
from flute.learn.preprocess import ColumnSums, log_transform
from flute.privacy.dp.mechanisms import NoisePlan, NoiseSource, gaussian_noise_share, release_clipped_vector_sum
from flute.privacy.dp.study_budget import SgdSchedule, StudyPrivacyPlan, StudyReleases, plan_dp_sgd_study, plan_study

MEMORY_LEDGER_KEY: Final = "memory-ledger"
"""node_config, embedded in-memory hubs only: database URL of the hub's privacy ledger."""

DP_STATE: Final = "flute.dp"
CENSUS_STATE: Final = "flute.dp.census"
MIN_UNIT_VARIANCE: Final = 1.0 / 256.0
"""Floor of a column's variance on the [0, 1] clipping scale after noise: std >= 1/16 of the
clipping range. The noisy variance of a narrow column in a wide range can be near 0; a tiny scale
would blow its standardised inputs up and let that column dominate every clipped gradient."""
CENSUS_RELEASES: Final = 1
PREPROCESSING_PRECISION: Final = 3
"""The study's one preprocessing release uses noise multiplier z / 3. Gaussian mechanisms compose
exactly (privacy loss distributions are Gaussian): multiplier z / 3 costs what 9 releases at z
cost, so the plan counts it as PREPROCESSING_PRECISION^2 releases. The column scales matter more
to a few noisy curvature-scaled steps than one more step's worth of noise: a scale off by 2
makes that column's step off by 4 (on PI-CAI, simulated over 30 noise draws with two training
rounds: precision 3 gives mean CV AUROC 0.878, worst 0.874; precision 2 mean 0.877, worst 0.852)."""
COUNT_WEIGHT: Final = 0.25
SQUARE_WEIGHT: Final = 4.0
"""Weights of the blocks of a preprocessing row (`DpColumnLayout`): the noise is the same on
every entry, so each block's weight sets its share of the accuracy. Counts are large (hundreds
of rows) and need little; the centred squares, whose mean is a column's variance (about 0.01 on
the [0, 1] scale of a clinical range), need the most."""


class PrivacyRefusal(RuntimeError):
    """The hub refuses a DP request (no reservation for this run, releases beyond the plan)."""


def study_releases(spec: StudySpec) -> StudyReleases:
    """CV folds and the final model each train once (leave-one-hub-out is off under secure
    aggregation), in training.rounds releases, or a tree model's histogram releases
    (`flute.engine.tree_privacy`); the census and the study's one preprocessing release (shared by all tasks) come
    once; every release counts against every record."""
    once = CENSUS_RELEASES + PREPROCESSING_PRECISION**2
    per_task = tree_privacy.releases_per_task(spec.model) if isinstance(spec.model, TREE_SPECS) else spec.training.rounds
    return StudyReleases(spec.evaluation.cv_folds + 1, per_task, preprocessing_per_task=0, per_study=once)


def study_plan(spec: StudySpec) -> StudyPrivacyPlan:
    """Computed by each hub from its own spec; cached because calibration takes seconds. An MLP
    trains by DP-SGD: each training release is one hub's local run of local_epochs DP-SGD epochs."""
    dp = _dp(spec)
    if isinstance(spec.model, MlpSpec) and spec.model.dp_sgd is not None:
        rate = spec.model.dp_sgd.sampling_rate
        schedule = SgdSchedule(spec.training.local_epochs * dp_sgd_steps_per_epoch(rate), rate)
        return _cached_plan(dp.target_epsilon, dp.delta, study_releases(spec), schedule)
    return _cached_plan(dp.target_epsilon, dp.delta, study_releases(spec), None)


@lru_cache(maxsize=16)
def _cached_plan(target_epsilon: float, delta: float, releases: StudyReleases, sgd: SgdSchedule | None) -> StudyPrivacyPlan:
    if sgd is not None:
        return plan_dp_sgd_study(target_epsilon, delta, releases, sgd)
    return plan_study(target_epsilon, delta, releases)


def mlp_dp_sgd(spec: StudySpec) -> DpSgd:
    """The DP-SGD settings of this study's MLP with the plan's noise multiplier. Each hub adds
    the full noise to its own local steps (local DP-SGD, whatever pets.dp.noise says): the hubs'
    steps are not summed step by step, so no share of the noise can be left to the others; secure
    aggregation then hides which hub sent which model on top of that guarantee."""
    if not isinstance(spec.model, MlpSpec) or spec.model.dp_sgd is None:
        raise PrivacyRefusal(f"study {spec.study_id} does not train an MLP by DP-SGD (model.dp_sgd)")
    plan = study_plan(spec)
    assert plan.sgd_noise_multiplier is not None  # an MLP plan always has one (study_plan)
    return DpSgd(plan.sgd_noise_multiplier, spec.model.dp_sgd.max_grad_norm, spec.model.dp_sgd.sampling_rate)


def noise_plan(dp: DpOptions, contributors: int) -> NoisePlan:
    if dp.noise == "local":
        return NoisePlan.local(contributors)
    return NoisePlan.distributed(contributors, tolerated_colluders=dp.tolerated_colluders, tolerated_dropouts=dp.tolerated_dropouts)


def noisy_sum(spec: StudySpec, rows: np.ndarray, sensitivity: float, contributors: int, *, precision: float = 1.0) -> np.ndarray:
    """Sum of per-record rows (each of L2 norm <= sensitivity) plus this hub's noise share, at
    the study's noise multiplier divided by `precision` (costing precision^2 releases)."""
    dp = _dp(spec)
    multiplier = study_plan(spec).noise_multiplier / precision
    release = release_clipped_vector_sum(rows, sensitivity, multiplier, dp.delta, plan=noise_plan(dp, contributors))
    return release.value


def noisy_total(spec: StudySpec, total: np.ndarray, sensitivity: float, contributors: int) -> np.ndarray:
    """A sum whose L2 sensitivity is bounded by construction (e.g. a histogram: one record, one bin
    per feature) plus this hub's share of noise of std (study multiplier) x sensitivity."""
    dp = _dp(spec)
    sigma = study_plan(spec).noise_multiplier * sensitivity
    return total + gaussian_noise_share(total.shape, sigma, noise_plan(dp, contributors), NoiseSource.secure())


# -- the ledger and this run's charge ---------------------------------------------------------


@contextmanager
def opened_ledger(node_config: Mapping[str, object]) -> Iterator[object]:
    """The hub's PrivacyLedger: its home's store, or an embedded in-memory hub's ledger database."""
    from flute.hub.ledger import PrivacyLedger

    home = node_config.get(HUB_HOME_KEY)
    if isinstance(home, str) and home:
        from pathlib import Path

        from flute.hub.node import open_hub

        with open_hub(Path(home)) as hub:
            yield PrivacyLedger(hub.store.engine)
        return
    url = node_config.get(MEMORY_LEDGER_KEY)
    if not isinstance(url, str) or not url:
        raise PrivacyRefusal(f"this hub has no privacy ledger (node config lacks {HUB_HOME_KEY!r}); it cannot take part in a DP study")
    from flute.hub.store import HubStore

    store = HubStore.open(url)
    try:
        yield PrivacyLedger(store.engine)
    finally:
        store.close()


@dataclass(frozen=True)
class RunCharge:
    """What a hub remembers (in its Context state) about this run's charge."""

    run_nonce: str
    charge_id: int
    committed: bool
    releases: int

    def to_config(self) -> ConfigRecord:
        return ConfigRecord({"run": self.run_nonce, "charge-id": self.charge_id, "committed": self.committed, "releases": self.releases})

    @classmethod
    def from_state(cls, state: RecordDict) -> RunCharge | None:
        if DP_STATE not in state.config_records:
            return None
        c = state.config_records[DP_STATE]
        return cls(str(c["run"]), int(c["charge-id"]), bool(c["committed"]), int(c["releases"]))  # type: ignore[arg-type, call-overload]


def reserve_study(spec: StudySpec, node_config: Mapping[str, object], state: RecordDict, run_nonce: str, hub: str) -> None:
    """Step 2: charge the whole study's cost before anything is computed (idempotent per run)."""
    current = RunCharge.from_state(state)
    if current is not None and current.run_nonce == run_nonce:
        return
    plan = study_plan(spec)
    operation = f"study {spec.study_id} run {run_nonce}: {plan.releases.count} Gaussian releases (noise multiplier {plan.noise_multiplier:.4g})"
    with opened_ledger(node_config) as ledger:
        reservation = ledger.reserve(spec.study_id, hub, plan.cost, operation)  # type: ignore[attr-defined]
    state[DP_STATE] = RunCharge(run_nonce, reservation.charge_id, False, 0).to_config()


def spend_release(spec: StudySpec, node_config: Mapping[str, object], state: RecordDict, run_nonce: str, *, units: int = 1) -> None:
    """Steps 3-4: before a release is computed, check it is within this run's charged plan,
    count it (`units` releases at the study's multiplier), commit the reservation with the first."""
    current = RunCharge.from_state(state)
    if current is None or current.run_nonce != run_nonce:
        raise PrivacyRefusal(f"no privacy budget is reserved for run {run_nonce} of study {spec.study_id} on this hub; the census reserves it")
    planned = study_plan(spec).releases.count
    if current.releases + units > planned:
        raise PrivacyRefusal(f"run {run_nonce} asks for DP release {current.releases + units}, but only {planned} were charged; refusing")
    if not current.committed:
        with opened_ledger(node_config) as ledger:
            ledger.commit(ledger.pending_reservation(current.charge_id))  # type: ignore[attr-defined]
    state[DP_STATE] = RunCharge(run_nonce, current.charge_id, True, current.releases + units).to_config()


# -- DP column sums for preprocessing -----------------------------------------------------------


@dataclass(frozen=True)
class DpColumnLayout:
    """Per record: [a, a y, a observed_j, observed_j c_j, b observed_j c_j^2 for each column j],
    c_j = u_j - 1/2 and u_j = (clip(x_j, lower_j, upper_j) - lower_j) / (upper_j - lower_j) in
    [0, 1] (after the log transform of log columns); a = COUNT_WEIGHT, b = SQUARE_WEIGHT.
    Centring at the public midpoint of the bounds bounds |c| by 1/2 and c^2 by 1/4, so a row's
    L2 norm is at most sqrt((2 + d) a^2 + d / 4 + d (b / 4)^2): the sensitivity of the summed
    vector. Compared with uncentred [1, y, observed, u, u^2] rows (norm sqrt(2 + 3d)) the
    variance of a column is estimated about 6 times more precisely at the same noise multiplier."""

    spec: StudySpec

    @property
    def n_columns(self) -> int:
        return len(self.spec.cohort.variables)

    @property
    def length(self) -> int:
        return 2 + 3 * self.n_columns

    @property
    def sensitivity(self) -> float:
        d = self.n_columns
        return math.sqrt((2 + d) * COUNT_WEIGHT**2 + d / 4.0 + d * (SQUARE_WEIGHT / 4.0) ** 2)

    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        dp, columns = _dp(self.spec), self.spec.cohort.variables
        raw = np.array([[dp.feature_bounds[name][0] for name in columns], [dp.feature_bounds[name][1] for name in columns]])
        lower, upper = log_transform(raw, columns, self.spec.preprocessing.log_transform)
        return lower, upper

    def rows(self, features: np.ndarray, labels: np.ndarray) -> np.ndarray:
        lower, upper = self._bounds()
        logged = log_transform(features, self.spec.cohort.variables, self.spec.preprocessing.log_transform)
        observed = ~np.isnan(logged)
        unit = (np.clip(np.nan_to_num(logged, nan=0.0), lower, upper) - lower) / (upper - lower)
        centred = np.where(observed, unit - 0.5, 0.0)
        counts = COUNT_WEIGHT * np.column_stack([np.ones(features.shape[0]), labels.astype(np.float64), observed.astype(np.float64)])
        return np.column_stack([counts, centred, SQUARE_WEIGHT * centred * centred])

    def decode(self, vector: np.ndarray) -> tuple[ColumnSums, int]:
        """Column sums in the model's (logged) units from the noisy vector (post-processing, no
        privacy cost): counts rounded and kept >= 2, the mean of u kept in [0, 1] and its variance
        in [MIN_UNIT_VARIANCE, 1/4], so standardisation always has positive scales. Any positive
        scale gives the same model family; noise here only changes the inputs' parametrisation."""
        d = self.n_columns
        lower, upper = self._bounds()
        counts = vector[: 2 + d] / COUNT_WEIGHT
        n_rows = max(int(round(counts[0])), 2)
        n_positive = min(max(int(round(counts[1])), 1), n_rows - 1)
        observed = np.clip(np.rint(counts[2:]), 2, n_rows).astype(np.int64)
        mean_centred = np.clip(vector[2 + d : 2 + 2 * d] / observed, -0.5, 0.5)
        variance_u = np.clip(vector[2 + 2 * d :] / (SQUARE_WEIGHT * observed) - mean_centred**2, MIN_UNIT_VARIANCE, 0.25)
        span = upper - lower
        mean = lower + span * (0.5 + mean_centred)
        total = observed * mean
        squares = observed * (mean * mean + span * span * variance_u * (observed - 1) / observed)
        return ColumnSums(n_rows, observed, total, squares, 0), n_positive


def noisy_census(spec: StudySpec, n_rows: int, n_positive: int, n_incomplete: int) -> tuple[int, int, int]:
    """The census counts with local Gaussian noise (one release of sensitivity sqrt(3)),
    rounded and clamped at 0: they describe one hub, so no secure sum hides them."""
    sigma = study_plan(spec).noise_multiplier * math.sqrt(3.0)
    noise = gaussian_noise_share((3,), sigma, NoisePlan.central(), NoiseSource.secure())
    noisy = np.array([n_rows, n_positive, n_incomplete], dtype=np.float64) + noise
    rows, positives, incomplete = (max(int(round(v)), 0) for v in noisy)
    return rows, min(positives, rows), min(incomplete, rows)


def remember_census_rows(state: RecordDict, run_nonce: str, rows: int) -> None:
    """Keep the row count this hub released (noised) in the run's census."""
    state[CENSUS_STATE] = ConfigRecord({"run": run_nonce, "rows": rows})


def released_census_rows(state: RecordDict, run_nonce: str) -> int:
    """The noisy row count this hub released in this run's census: public, so a release may
    re-use it (e.g. as its weight in an average) at no privacy cost."""
    if CENSUS_STATE not in state.config_records or state.config_records[CENSUS_STATE]["run"] != run_nonce:
        raise PrivacyRefusal(f"no census was released in run {run_nonce} on this hub; the census comes first")
    return max(int(state.config_records[CENSUS_STATE]["rows"]), 1)  # type: ignore[call-overload]


def _dp(spec: StudySpec) -> DpOptions:
    if spec.pets.dp is None:
        raise PrivacyRefusal(f"study {spec.study_id} has no pets.dp options")
    return spec.pets.dp
