"""Federated (histogram) AUROC and calibration equal the exact patient-level values within 0.002.

References are independent of our code: sklearn's roc_auc_score, sklearn's unpenalised
LogisticRegression for the slope, and a scipy root of the offset model's score equation for
calibration-in-the-large. (F-PIL-11/F-PIL-22: the histogram is all the coordinator sees;
F-PIL-15: comparisons against BCN-RC must not be blurred by the aggregation.)
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from flute.evaluate.calibration import calibration
from flute.evaluate.discrimination import auroc
from flute.evaluate.exact import accuracy_versus_exact, exact_auroc, exact_calibration
from flute.evaluate.grid import ScoreGrid, expit
from flute.evaluate.logistic import LogisticFitError
from flute.evaluate.summary import summarise_scores

TOLERANCE = 0.002


def sklearn_slope(y: np.ndarray, x: np.ndarray) -> float:
    model = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(x[:, None], y)
    return float(model.coef_[0, 0])


def scipy_calibration_in_the_large(y: np.ndarray, x: np.ndarray) -> float:
    """Root of sum(y) - sum(expit(a + x)) = 0: the offset model's MLE."""
    return float(brentq(lambda a: float(np.sum(y) - np.sum(expit(a + x))), -30, 30, xtol=1e-14))


def test_auroc_matches_sklearn_within_tolerance(scores, grid: ScoreGrid) -> None:
    name, y, p = scores
    estimate = auroc(summarise_scores(y, p, grid))
    exact = roc_auc_score(y, p)
    error = abs(estimate.value - exact)
    assert error <= TOLERANCE, f"{name}: AUROC error {error:.2e}"
    assert error <= estimate.error_bound + 1e-12, f"{name}: error {error} exceeds the stated bound"


def test_calibration_matches_independent_exact_fits(scores, grid: ScoreGrid) -> None:
    name, y, p = scores
    fit = calibration(summarise_scores(y, p, grid))
    x = grid.clipped_logit(p)
    assert abs(fit.slope.value - sklearn_slope(y, x)) <= TOLERANCE, name
    assert abs(fit.intercept.value - scipy_calibration_in_the_large(y, x)) <= TOLERANCE, name


def test_tied_scores_give_the_exact_auroc(grid: ScoreGrid) -> None:
    """A 5-level score has only exact ties within bins: the histogram AUROC is exact, not approximate."""
    rng = np.random.default_rng(5)
    rates = np.array([0.06, 0.05, 0.19, 0.54, 0.84])
    level = rng.integers(0, 5, 4000)
    y = (rng.random(4000) < rates[level]).astype(int)
    assert auroc(summarise_scores(y, rates[level], grid)).value == pytest.approx(roc_auc_score(y, rates[level]), abs=1e-12)


def test_exact_reference_helpers_agree_with_sklearn(grid: ScoreGrid) -> None:
    rng = np.random.default_rng(8)
    y = rng.integers(0, 2, 500)
    p = np.round(rng.random(500), 2)
    assert exact_auroc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    comparison = accuracy_versus_exact(y, p, grid)
    assert comparison.slope_exact == pytest.approx(sklearn_slope(y, grid.clipped_logit(p)), abs=1e-6)
    assert comparison.auroc_error <= comparison.auroc_error_bound


def test_separated_outcomes_are_reported_not_fitted(grid: ScoreGrid) -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    with pytest.raises(LogisticFitError, match="separate"):
        calibration(summarise_scores(y, p, grid))


@st.composite
def raw_score_vectors(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Arbitrary small score vectors incl. exact 0/1, grid-edge risks and duplicates."""
    n = draw(st.integers(2, 60))
    y = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    special = st.sampled_from([0.0, 1.0, 1e-12, 1 - 1e-12, 0.15, 0.5, 0.05, 0.3])
    probability = st.floats(0.0, 1.0, allow_nan=False)
    p = np.array(draw(st.lists(st.one_of(probability, special), min_size=n, max_size=n)))
    return y, p


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=raw_score_vectors())
def test_auroc_never_exceeds_its_stated_error_bound(data: tuple[np.ndarray, np.ndarray]) -> None:
    """Any scores at all: |histogram AUROC - exact AUROC| <= the bound reported with it."""
    y, p = data
    if y.min() == y.max():
        return
    estimate = auroc(summarise_scores(y, p, ScoreGrid()))
    assert abs(estimate.value - roc_auc_score(y, p)) <= estimate.error_bound + 1e-12


@st.composite
def simulated_sites(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Hospital-sized score vectors from hypothesis-chosen shapes: separation, spread, prevalence,
    rounding of the reported risk (ties) and a share of extreme scores."""
    n = draw(st.integers(200, 3000))
    prevalence = draw(st.floats(0.1, 0.6))
    separation = draw(st.floats(0.0, 2.5))
    spread = draw(st.floats(0.4, 3.0))
    decimals = draw(st.sampled_from([None, 2, 3, 4]))
    extreme_share = draw(st.floats(0.0, 0.1))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prevalence).astype(np.int64)
    p = expit(rng.normal(np.where(y == 1, separation / 2, -separation / 2), spread))
    extreme = rng.random(n) < extreme_share
    p[extreme] = rng.choice([0.0, 1.0, 1e-10, 1 - 1e-10], size=int(extreme.sum()))
    if decimals is not None:
        p = np.round(p, decimals)
    return y, p


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=simulated_sites())
def test_federated_metrics_within_tolerance_on_generated_sites(data: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = data
    if min(y.sum(), (1 - y).sum()) < 10:
        return
    grid = ScoreGrid()
    assert abs(auroc(summarise_scores(y, p, grid)).value - roc_auc_score(y, p)) <= TOLERANCE
    x = grid.clipped_logit(p)
    try:
        fit = calibration(summarise_scores(y, p, grid))
    except LogisticFitError:
        fit = None
    try:
        exact = exact_calibration(y, p, grid)
    except LogisticFitError:
        exact = None
    assert (fit is None) == (exact is None), "histogram and exact fits disagree on estimability"
    if fit is None or exact is None:
        return  # separated outcomes: no finite slope exists either way
    assert abs(fit.intercept.value - scipy_calibration_in_the_large(y, x)) <= TOLERANCE
    assert abs(fit.slope.value - exact.slope.value) <= TOLERANCE
