"""Record-level DP studies (URS-6/7/8, NF-HUF-1, NF-PIL-5): each hub's ledger is charged exactly
the accounted study cost before computing, an insufficient budget refuses the study with no
charge, and a reservation survives a crash; the preprocessing and gradient releases stay within
their stated sensitivities; curvature-scaled steps converge in few rounds; an MLP study by
DP-SGD (F-HUF-7) is charged its composed cost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flute.engine.flower import RecordDict
from flute.engine.hub_privacy import MEMORY_LEDGER_KEY, DpColumnLayout, PrivacyRefusal, reserve_study, spend_release, study_plan
from flute.engine.spec import StudySpec
from flute.engine.workflow import TooFewHubs
from flute.learn.clipped_gradient import (
    ClippedGradientAggregator,
    ClippedGradientSums,
    clipped_gradient_rows,
    expected_logistic_curvature,
    row_sensitivity,
)
from flute.learn.logistic import LogisticObjective

from .dp_hubs import BOUNDS, ledger_of, ledgers, run
from .engine_inputs import HUB_NAMES, make_spec, synthetic_hubs



def dp_spec() -> StudySpec:
    return make_spec(
        strategy={"name": "clipped_gradient", "clip_norm": 1.0},
        training={"rounds": 3, "learning_rate": 2.0},
        pets={"mode": "secagg_dp", "dp": {"target_epsilon": 1.0, "delta": 1e-5, "feature_bounds": BOUNDS}},
    )




@pytest.mark.slow
def test_dp_study_charges_every_hub_exactly_the_accounted_cost(tmp_path: Path) -> None:
    spec = dp_spec()
    urls = ledgers(tmp_path, spec, {})
    result = run(spec, urls)
    plan = study_plan(spec)
    assert plan.releases.count == 1 * 3 + 1 + 9  # final model: 3 rounds; census; preprocessing at z / 3
    assert plan.cost.epsilon <= 1.0 <= plan.cost.details["epsilon_rdp"]  # type: ignore[operator]
    assert result.final_model.rounds == 3
    for name in HUB_NAMES:
        status = ledger_of(urls[name]).budget(spec.study_id, name)
        assert status.epsilon_spent == pytest.approx(plan.cost.epsilon, abs=1e-12)
        assert status.delta_spent == pytest.approx(1e-5) and status.epsilon_reserved == 0.0


def test_insufficient_budget_refuses_before_any_computation(tmp_path: Path) -> None:
    spec = make_spec(**{**dp_spec().model_dump(), "federation": {"min_hubs": 3, "retries": 0, "timeout_s": 30}})
    urls = ledgers(tmp_path, spec, {"hub-b": 0.5})
    with pytest.raises(TooFewHubs, match="census"):
        run(spec, urls)
    assert ledger_of(urls["hub-b"]).recent_charges() == []  # nothing reserved, nothing computed
    assert ledger_of(urls["hub-b"]).budget(spec.study_id, "hub-b").epsilon_remaining == 0.5


def test_reservation_is_charged_until_committed_and_releases_are_capped(tmp_path: Path) -> None:
    spec = dp_spec()
    urls = ledgers(tmp_path, spec, {})
    node_config, state = {MEMORY_LEDGER_KEY: urls["hub-a"]}, RecordDict()
    reserve_study(spec, node_config, state, "run-1", "hub-a")
    # a hub that crashed here: the charge is reserved, i.e. counted against the budget
    status = ledger_of(urls["hub-a"]).budget(spec.study_id, "hub-a")
    assert status.epsilon_reserved == pytest.approx(study_plan(spec).cost.epsilon, abs=1e-12) and status.epsilon_spent == 0.0
    with pytest.raises(PrivacyRefusal, match="no privacy budget is reserved"):
        spend_release(spec, node_config, state, "another-run")
    for _ in range(study_plan(spec).releases.count):
        spend_release(spec, node_config, state, "run-1")
    assert ledger_of(urls["hub-a"]).budget(spec.study_id, "hub-a").epsilon_reserved == 0.0
    with pytest.raises(PrivacyRefusal, match="only 13 were charged"):
        spend_release(spec, node_config, state, "run-1")


def test_report_states_the_pets_epsilon_delta_and_what_they_cover() -> None:
    from flute.engine.validation import pets_statement

    spec = dp_spec()
    pets, epsilon, delta = pets_statement(spec)
    assert epsilon == study_plan(spec).cost.epsilon and delta == 1e-5
    assert "secure aggregation" in pets[0] and "unit: one patient's record" in pets[1] and "not DP" in pets[1]
    assert pets_statement(make_spec()) == ((), None, None)


# -- the preprocessing release and the curvature-scaled step ---------------------------------

raw_values = st.floats(min_value=1e-3, max_value=1e3, allow_nan=False)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(raw_values, raw_values, raw_values, raw_values, st.booleans(), st.booleans()), min_size=1, max_size=20))
def test_every_preprocessing_row_is_within_the_stated_sensitivity(records: list[tuple[float, ...]]) -> None:
    """The release's noise is calibrated to `sensitivity`: no record, however extreme or
    incomplete, may contribute a longer row (URS-6/7/8)."""
    layout = DpColumnLayout(dp_spec())
    features = np.array([[r[0], r[1], r[2], r[3]] for r in records])
    features[[r[4] for r in records], 1] = np.nan
    labels = np.array([int(r[5]) for r in records])
    norms = np.linalg.norm(layout.rows(features, labels), axis=1)
    assert np.all(norms <= layout.sensitivity + 1e-12)


def test_noise_free_preprocessing_release_decodes_to_the_exact_column_moments() -> None:
    from flute.learn.preprocess import Standardiser, log_transform

    spec = dp_spec()
    table = synthetic_hubs()[0]
    inside = np.all((table.features >= [40, 0.1, 10, 1]) & (table.features <= [90, 100, 300, 5]), axis=1)
    features, labels = table.features[inside], table.labels[inside]
    layout = DpColumnLayout(spec)
    sums, positives = layout.decode(layout.rows(features, labels).sum(axis=0))
    logged = log_transform(features, spec.cohort.variables, spec.preprocessing.log_transform)
    standardiser = Standardiser.from_sums(spec.cohort.variables, spec.preprocessing.log_transform, sums)
    assert (sums.n_rows, positives) == (features.shape[0], int(labels.sum()))
    np.testing.assert_allclose(standardiser.means, logged.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(standardiser.scales, logged.std(axis=0), rtol=1e-9)


def test_gradient_rows_stay_within_the_row_sensitivity_and_decode_the_row_total() -> None:
    rng = np.random.default_rng(3)
    inputs, labels = 5.0 * rng.normal(size=(200, 3)), rng.integers(0, 2, 200)
    objective = LogisticObjective(class_weights=(0.7, 1.8))
    rows = clipped_gradient_rows(rng.normal(size=4), inputs, labels, objective, clip_norm=0.5)
    assert np.all(np.linalg.norm(rows, axis=1) <= row_sensitivity(objective, 0.5) + 1e-12)
    assert ClippedGradientSums.from_vector(rows.sum(axis=0)).weight_total == pytest.approx(objective.sample_weights(labels).sum())


def test_curvature_scaled_steps_reach_the_logistic_fit_in_few_rounds() -> None:
    """Two diagonal Newton steps from zero on standardised inputs come close to the maximum
    likelihood fit that a fixed-rate step needs many rounds for: fewer rounds, fewer DP releases."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(5)
    inputs = rng.normal(size=(4000, 3))
    labels = (rng.random(4000) < 1 / (1 + np.exp(-(-1.2 + inputs @ [1.0, -0.5, 0.3])))).astype(np.int64)
    objective = LogisticObjective()
    assert expected_logistic_curvature(np.zeros(4)) == pytest.approx(0.25)

    def fit(aggregator: ClippedGradientAggregator, rounds: int) -> np.ndarray:
        weights = np.zeros(4)
        for _ in range(rounds):
            rows = clipped_gradient_rows(weights, inputs, labels, objective, clip_norm=100.0)
            (outcome, _) = aggregator.aggregate(weights, [ClippedGradientSums.from_vector(rows.sum(axis=0))], objective, {})
            weights = outcome.weights
        return weights

    reference = LogisticRegression(C=np.inf).fit(inputs, labels)
    exact = np.r_[reference.intercept_, reference.coef_[0]]
    curvature = fit(ClippedGradientAggregator(1.0, curvature_scaled=True), 3)
    fixed = fit(ClippedGradientAggregator(1.0), 3)
    assert np.max(np.abs(curvature - exact)) < 0.1 < np.max(np.abs(fixed - exact))


# -- the MLP by DP-SGD ------------------------------------------------------------------------


def dp_mlp_spec(**model: object) -> StudySpec:
    return make_spec(
        model={"name": "mlp", "hidden_units": 3, "l2": 0.01, "dp_sgd": {"max_grad_norm": 1.0, "sampling_rate": 0.25}, **model},
        strategy={"name": "fedavg"},
        training={"rounds": 2, "local_epochs": 1, "learning_rate": 0.5},
        pets={"mode": "secagg_dp", "dp": {"target_epsilon": 1.0, "delta": 1e-5, "feature_bounds": BOUNDS}},
    )


@pytest.mark.slow
def test_dp_sgd_mlp_study_charges_every_hub_the_composed_cost(tmp_path: Path) -> None:
    """Census and preprocessing (full-batch Gaussian) compose with every hub's DP-SGD steps of
    every round; each hub's ledger is charged that PLD epsilon (URS-6/7/8, F-HUF-7)."""
    from flute.privacy.dp.accounting import full_batch_and_sgd_epsilon
    from flute.privacy.dp.study_budget import SgdSchedule

    spec = dp_mlp_spec()
    plan = study_plan(spec)  # calibration takes seconds; warm the hubs' cache so no census times out on a loaded machine
    urls = ledgers(tmp_path, spec, {})
    result = run(spec, urls)
    assert plan.releases.count == 2 + 1 + 9 and plan.sgd == SgdSchedule(4, 0.25)  # 1 epoch = 4 steps at q = 1/4
    assert plan.sgd_noise_multiplier is not None
    recomputed = full_batch_and_sgd_epsilon(plan.noise_multiplier, 10, plan.sgd_noise_multiplier, 0.25, 2 * 4, 1e-5)
    assert recomputed == pytest.approx(plan.cost.epsilon) and plan.cost.epsilon <= 1.0 <= plan.cost.details["epsilon_rdp"]  # type: ignore[operator]
    assert result.final_model.rounds == 2
    for name in HUB_NAMES:
        assert ledger_of(urls[name]).budget(spec.study_id, name).epsilon_spent == pytest.approx(plan.cost.epsilon, abs=1e-12)


def test_a_dp_mlp_study_needs_dp_sgd_and_dp_sgd_needs_a_dp_study() -> None:
    with pytest.raises(ValueError, match="set model.dp_sgd"):
        dp_mlp_spec(dp_sgd=None)
    with pytest.raises(ValueError, match="model.dp_sgd is set but the study has no pets.dp"):
        make_spec(model={"name": "mlp", "dp_sgd": {}}, strategy={"name": "fedavg"})


def test_full_batch_sgd_steps_compose_like_gaussian_releases() -> None:
    """Sampling rate 1 makes a DP-SGD step a plain Gaussian release: the composed accountant must
    then agree with the exact Gaussian composition."""
    from flute.privacy.dp.accounting import full_batch_and_sgd_epsilon, gaussian_mechanism_epsilon

    composed = full_batch_and_sgd_epsilon(8.0, 3, 8.0, 1.0, 5, 1e-5)
    assert composed == pytest.approx(gaussian_mechanism_epsilon(1.0, 8.0, 8, 1e-5), rel=1e-2)
