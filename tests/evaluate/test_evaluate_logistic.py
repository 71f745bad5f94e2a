"""The weighted Newton fitter behind calibration: weights act as replicated patients, and
separated data are refused rather than returned as huge numbers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from flute.evaluate.logistic import LogisticFitError, fit_weighted_logistic


def test_weights_equal_replicated_rows_and_match_sklearn() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=200)
    y = (rng.random(200) < 1 / (1 + np.exp(-(0.3 + 1.2 * x)))).astype(float)
    weights = rng.integers(1, 5, 200).astype(float)
    design = np.column_stack((np.ones(200), x))
    weighted = fit_weighted_logistic(design, y, weights)
    replicated = fit_weighted_logistic(np.repeat(design, weights.astype(int), axis=0), np.repeat(y, weights.astype(int)),
                                       np.ones(int(weights.sum())))
    np.testing.assert_allclose(weighted.coefficients, replicated.coefficients, atol=1e-9)
    np.testing.assert_allclose(weighted.covariance, replicated.covariance, rtol=1e-6)
    reference = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(x[:, None], y, sample_weight=weights)
    np.testing.assert_allclose(weighted.coefficients, [reference.intercept_[0], reference.coef_[0, 0]], atol=1e-6)


def test_separated_data_raise_instead_of_returning_runaway_coefficients() -> None:
    x = np.array([-3.0, -2.0, -1.0, 1.0, 2.0, 3.0])
    y = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    with pytest.raises(LogisticFitError, match="separate"):
        fit_weighted_logistic(np.column_stack((np.ones(6), x)), y, np.ones(6))


def test_missing_outcome_class_and_shape_errors_are_explicit() -> None:
    with pytest.raises(LogisticFitError, match="both outcomes"):
        fit_weighted_logistic(np.ones((3, 1)), np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="inconsistent shapes"):
        fit_weighted_logistic(np.ones((3, 1)), np.zeros(2), np.ones(3))
