"""Federated preprocessing from additive sums equals preprocessing of the pooled rows."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from flute.learn.folds import stratified_folds
from flute.learn.preprocess import Standardiser, column_sums, log_transform

from .engine_inputs import COLUMNS, LOG_COLUMNS, make_spec, pooled, run_study, synthetic_hubs


def test_engine_preprocessing_equals_pooled_statistics() -> None:
    tables = synthetic_hubs()
    result = run_study(tables, make_spec())
    logged = log_transform(pooled(tables).features, COLUMNS, LOG_COLUMNS)
    prep = result.final_model.preprocessing
    np.testing.assert_allclose(prep.means, np.nanmean(logged, axis=0), rtol=1e-13)
    np.testing.assert_allclose(prep.scales, np.nanstd(logged, axis=0, ddof=1), rtol=1e-11)
    assert sum(count.n for count in result.hubs) == pooled(tables).n
    assert sum(count.n_incomplete for count in result.hubs) == int(np.isnan(pooled(tables).features).any(axis=1).sum())


def test_cv_preprocessing_uses_only_the_training_folds() -> None:
    tables = synthetic_hubs()
    result = run_study(tables, make_spec(evaluation={"cv_folds": 3}))
    fold_two = next(o for o in result.of_kind("cv") if o.task.fold == 2)
    training = np.vstack([t.features[stratified_folds(t.labels, 3, 7) != 2] for t in tables])
    logged = log_transform(training, COLUMNS, LOG_COLUMNS)
    np.testing.assert_allclose(fold_two.model.preprocessing.means, np.nanmean(logged, axis=0), rtol=1e-13)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(arrays(np.float64, st.tuples(st.integers(2, 30), st.just(3)), elements=st.one_of(st.just(np.nan), st.floats(-1e3, 1e3))), min_size=1, max_size=4)
)
def test_summed_column_sums_equal_the_pooled_ones(parts: list[np.ndarray]) -> None:
    total = column_sums(parts[0])
    for part in parts[1:]:
        total = total + column_sums(part)
    whole = column_sums(np.vstack(parts))
    assert total.n_rows == whole.n_rows
    np.testing.assert_array_equal(total.n_observed, whole.n_observed)
    np.testing.assert_allclose(total.total, whole.total, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(total.n_missing, np.isnan(np.vstack(parts)).sum(axis=0))


def test_transform_imputes_the_global_mean_and_standardises() -> None:
    features = np.array([[1.0, 10.0], [np.nan, 20.0], [3.0, np.nan], [4.0, 40.0]])
    standardiser = Standardiser.from_sums(("a", "b"), ("b",), column_sums(log_transform(features, ("a", "b"), ("b",))))
    out = standardiser.transform(features)
    assert out[1, 0] == 0.0 and out[2, 1] == 0.0  # missing -> global mean -> 0 after centring
    np.testing.assert_allclose(np.nanmean(out[[0, 2, 3], 0]), 0.0, atol=1e-15)
