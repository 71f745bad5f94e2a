"""Net benefit and the 15 % operating point equal the patient-level computation exactly."""

from __future__ import annotations

import numpy as np
import pytest

from flute.evaluate.decision import DECISION_THRESHOLDS, decision_curve, operating_point
from flute.evaluate.grid import ScoreGrid
from flute.evaluate.summary import summarise_scores


def exact_net_benefit(y: np.ndarray, p: np.ndarray, threshold: float) -> float:
    biopsied = p >= threshold
    n = y.size
    return float(np.sum(biopsied & (y == 1)) / n - np.sum(biopsied & (y == 0)) / n * threshold / (1 - threshold))


def test_net_benefit_is_exact_at_grid_edge_thresholds(scores, grid: ScoreGrid) -> None:
    name, y, p = scores
    curve = decision_curve(summarise_scores(y, p, grid))
    prevalence = y.mean()
    assert [point.threshold for point in curve] == list(DECISION_THRESHOLDS)
    for point in curve:
        t = point.threshold
        assert point.model == pytest.approx(exact_net_benefit(y, p, t), abs=1e-12), (name, t)
        assert point.biopsy_all == pytest.approx(prevalence - (1 - prevalence) * t / (1 - t), abs=1e-12)
        assert point.biopsy_none == 0.0


def test_scores_exactly_on_the_threshold_are_biopsied(grid: ScoreGrid) -> None:
    y = np.array([1, 0, 1, 0, 0])
    p = np.array([0.15, 0.15, np.nextafter(0.15, 0), 0.5, 0.01])
    counts = operating_point(summarise_scores(y, p, grid), 0.15).counts
    assert (counts.true_positives, counts.false_positives, counts.false_negatives, counts.true_negatives) == (1, 2, 1, 1)


def test_operating_point_at_15_percent_matches_direct_counts(grid: ScoreGrid) -> None:
    rng = np.random.default_rng(4)
    y = (rng.random(2000) < 0.4).astype(int)
    p = np.round(np.clip(rng.normal(0.25 + 0.3 * y, 0.2), 0, 1), 3)
    op = operating_point(summarise_scores(y, p, grid))
    biopsied = p >= 0.15
    assert op.threshold == 0.15
    assert op.biopsies_avoided_percent == pytest.approx(100 * np.mean(~biopsied))
    assert op.cspca_missed_percent == pytest.approx(100 * np.mean(~biopsied[y == 1]))
    assert op.sensitivity == pytest.approx(np.mean(biopsied[y == 1]))
    assert op.specificity == pytest.approx(np.mean(~biopsied[y == 0]))
    assert op.positive_predictive_value == pytest.approx(np.mean(y[biopsied]))
    assert op.negative_predictive_value == pytest.approx(1 - np.mean(y[~biopsied]))
    assert op.counts.net_benefit == pytest.approx(exact_net_benefit(y, p, 0.15))


def test_threshold_off_the_grid_is_refused(grid: ScoreGrid) -> None:
    summary = summarise_scores(np.array([0, 1]), np.array([0.1, 0.9]), grid)
    with pytest.raises(ValueError, match="0.125 is not an edge"):
        decision_curve(summary, [0.125])


@pytest.mark.parametrize("events,n", [(0, 1), (0, 3), (0, 1000), (3, 3), (1000, 1000), (1, 7)])
def test_wilson_interval_contains_the_observed_proportion(events: int, n: int) -> None:
    from flute.evaluate.calibration import wilson_interval

    lower, upper = wilson_interval(events, n)
    assert 0.0 <= lower <= events / n <= upper <= 1.0
