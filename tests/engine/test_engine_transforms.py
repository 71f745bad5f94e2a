"""Per-variable feature transforms of the study spec (PI-RADS as categories, log PSA): validated
with reasons, applied identically by every hub from public information only (F-PIL-22/23), and
equal to the pooled computation (URS-1: only column sums of the transformed inputs leave a hub)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flute.cohort.table import StudyTable
from flute.learn.estimator import FederatedLogisticRegression
from flute.learn.preprocess import PreprocessingError, Standardiser, category_levels, column_sums, design_columns, design_matrix

from .engine_inputs import COLUMNS, LOG_COLUMNS, make_spec, pooled, run_study, synthetic_hubs
from .test_engine_spec import refusal

CATEGORICAL = {"log_transform": list(LOG_COLUMNS), "categories": ["pirads"]}
LEVELS = category_levels(("pirads",))


def test_unknown_or_unfit_transforms_are_refused_with_reasons() -> None:
    assert any("preprocessing.splines: unknown option" in r for r in refusal(preprocessing={"splines": ["psa"]}))
    no_codes = refusal(preprocessing={"categories": ["psa"]})
    assert any("['psa'] have no IG-fixed category codes" in r and "'pirads'" in r for r in no_codes)
    assert any("['gleason'] have no IG-fixed category codes" in r for r in refusal(preprocessing={"categories": ["gleason"]}))
    assert any("preprocessing.categories names ['dre'], which are not in cohort.variables" in r for r in refusal(preprocessing={"categories": ["dre"]}))
    both = refusal(preprocessing={"log_transform": ["pirads"], "categories": ["pirads"]})
    assert any("['pirads'] are both log-transformed and categorical" in r for r in both)
    assert any("more than once" in r for r in refusal(preprocessing={"categories": ["pirads", "pirads"]}))


def test_categories_are_refused_in_a_dp_study() -> None:
    bounds = {"ageAtBiopsy": [40, 90], "psa": [0.1, 100], "prostateVolume": [5, 300], "pirads": [1, 5]}
    reasons = refusal(
        preprocessing=CATEGORICAL,
        strategy={"name": "clipped_gradient"},
        evaluation={"cv_folds": 0, "leave_one_hub_out": False, "score_bins": 2000},
        pets={"mode": "secagg_dp", "dp": {"target_epsilon": 1.0, "feature_bounds": bounds}},
    )
    assert any("preprocessing.categories is not yet supported with pets.mode 'secagg_dp'" in r for r in reasons)


def test_spec_names_the_model_inputs() -> None:
    assert make_spec(preprocessing=CATEGORICAL).model_inputs == ("ageAtBiopsy", "psa", "prostateVolume", "pirads=2", "pirads=3", "pirads=4", "pirads=5")
    assert make_spec().model_inputs == COLUMNS


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.sampled_from([1.0, 2.0, 3.0, 4.0, 5.0]), st.just(float("nan"))), min_size=1, max_size=30))
def test_indicators_are_one_hot_and_missing_stays_missing(pirads: list[float]) -> None:
    values = np.array(pirads)[:, None]
    design = design_matrix(values, ("pirads",), (), LEVELS)
    assert design.shape == (len(pirads), 4)
    missing = np.isnan(values[:, 0])
    assert np.isnan(design[missing]).all()
    observed = design[~missing]
    assert set(np.unique(observed)) <= {0.0, 1.0}
    np.testing.assert_array_equal(observed.sum(axis=1), (values[~missing, 0] > 1).astype(float))


def test_values_outside_the_levels_and_logs_of_zero_are_refused() -> None:
    with pytest.raises(PreprocessingError, match=r"'pirads' has value\(s\) \['3.5', '6'\] outside its category levels"):
        design_matrix(np.array([[3.5], [6.0], [2.0]]), ("pirads",), (), LEVELS)
    with pytest.raises(PreprocessingError, match="'psa' has 1 value"):
        design_matrix(np.array([[0.0, 3.0]]), ("psa", "pirads"), ("psa",), LEVELS)


def test_federated_study_with_categories_equals_the_pooled_fit() -> None:
    """Hubs expand PI-RADS locally; the federated Newton model equals a pooled fit on the
    pooled design (same means, scales and weights)."""
    tables = synthetic_hubs()
    spec = make_spec(preprocessing=CATEGORICAL)
    result = run_study(tables, spec)
    data = pooled(tables)
    levels = category_levels(spec.preprocessing.categories)
    expected = Standardiser.from_sums(COLUMNS, LOG_COLUMNS, column_sums(design_matrix(data.features, COLUMNS, LOG_COLUMNS, levels)), categories=("pirads",))
    model = result.final_model
    assert design_columns(COLUMNS, levels) == expected.inputs
    np.testing.assert_allclose(model.preprocessing.means, expected.means, rtol=1e-12)
    np.testing.assert_allclose(model.preprocessing.scales, expected.scales, rtol=1e-12)
    reference = FederatedLogisticRegression(l2=0.001).fit(expected.transform(data.features), data.labels)
    np.testing.assert_allclose(model.predict(data.features), reference.predict_proba(expected.transform(data.features))[:, 1], atol=1e-6)


@pytest.mark.parametrize("model", [{"name": "gbdt", "n_trees": 3, "max_depth": 2}, {"name": "linear_svm"}])
def test_other_families_train_on_the_category_inputs(model: dict[str, object]) -> None:
    strategy = {"name": "newton"} if model["name"] == "gbdt" else {"name": "fedavg"}
    spec = make_spec(preprocessing=CATEGORICAL, model=model, strategy=strategy, training={"rounds": 3})
    result = run_study(synthetic_hubs(), spec)
    risks = result.final_model.predict(StudyTable(COLUMNS, np.array([[66.0, 5.0, 40.0, 4.0]]), np.array([1])).features)
    assert risks.shape == (1,) and 0.0 < risks[0] < 1.0
