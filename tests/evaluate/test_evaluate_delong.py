"""The DeLong CI from the histogram matches DeLong on the raw scores (TRIPOD+AI: AUROC with 95 % CI)."""

from __future__ import annotations

import numpy as np
import pytest

from flute.evaluate.discrimination import Z_975, auroc, roc_curve
from flute.evaluate.grid import ScoreGrid
from flute.evaluate.summary import summarise_scores


def exact_delong(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """DeLong et al. (1988) on patient-level scores: (AUROC, SE) from per-patient placement values."""
    events, nonevents = np.sort(p[y == 1]), np.sort(p[y == 0])
    n1, n0 = events.size, nonevents.size
    # share of non-events below each event (ties 1/2), share of events above each non-event
    v10 = (np.searchsorted(nonevents, events, "left") + np.searchsorted(nonevents, events, "right")) / (2 * n0)
    v01 = (2 * n1 - np.searchsorted(events, nonevents, "left") - np.searchsorted(events, nonevents, "right")) / (2 * n1)
    value = float(v10.mean())
    variance = v10.var(ddof=1) / n1 + v01.var(ddof=1) / n0
    return value, float(np.sqrt(variance))


def test_exact_delong_reference_is_itself_correct() -> None:
    """Hand-checkable case: events (0.9, 0.4), non-events (0.4, 0.1): AUROC = (1 + 1 + 0.5 + 1) / 4."""
    value, se = exact_delong(np.array([1, 1, 0, 0]), np.array([0.9, 0.4, 0.4, 0.1]))
    assert value == pytest.approx(0.875)
    # placements: events (1.0, 0.75) -> var 0.03125; non-events (0.75, 1.0) -> var 0.03125
    assert se == pytest.approx(np.sqrt(0.03125 / 2 + 0.03125 / 2))


def test_histogram_delong_matches_exact_delong(scores, grid: ScoreGrid) -> None:
    name, y, p = scores
    estimate = auroc(summarise_scores(y, p, grid))
    exact_value, exact_se = exact_delong(y, p)
    assert estimate.standard_error == pytest.approx(exact_se, rel=0.02, abs=2e-4), name
    exact_low = max(0.0, exact_value - Z_975 * exact_se)
    exact_high = min(1.0, exact_value + Z_975 * exact_se)
    assert abs(estimate.ci_low - exact_low) <= 0.002, name
    assert abs(estimate.ci_high - exact_high) <= 0.002, name


def test_histogram_delong_is_exact_for_tied_scores(grid: ScoreGrid) -> None:
    rng = np.random.default_rng(21)
    levels = np.array([0.02, 0.1, 0.3, 0.6, 0.9])
    y = rng.integers(0, 2, 900)
    p = levels[np.minimum(rng.integers(0, 5, 900) + y, 4)]
    estimate = auroc(summarise_scores(y, p, grid))
    value, se = exact_delong(y, p)
    assert estimate.value == pytest.approx(value, abs=1e-12)
    assert estimate.standard_error == pytest.approx(se, rel=1e-10)


def test_roc_curve_runs_from_origin_to_corner_and_integrates_to_auroc(grid: ScoreGrid) -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 1000)
    p = np.clip(rng.normal(0.4 + 0.2 * y, 0.15), 0, 1)
    summary = summarise_scores(y, p, grid)
    curve = roc_curve(summary)
    assert (curve.false_positive_rate[0], curve.true_positive_rate[0]) == (0.0, 0.0)
    assert (curve.false_positive_rate[-1], curve.true_positive_rate[-1]) == (1.0, 1.0)
    assert np.all(np.diff(curve.false_positive_rate) >= 0) and np.all(np.diff(curve.true_positive_rate) >= 0)
    # trapezoids between bin edges count within-bin pairs as ties: exactly the Mann-Whitney AUROC
    assert np.trapezoid(curve.true_positive_rate, curve.false_positive_rate) == pytest.approx(auroc(summary).value)
