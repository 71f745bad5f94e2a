"""Patient-level reference metrics, to measure what the histogram approximation costs.

Used by tests and benchmarks only, on data that is allowed to sit in one place (simulated or
public); production validation never calls these (F-PIL-22).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flute.evaluate.calibration import CalibrationFit, WeightedPoints, calibration, fit_calibration
from flute.evaluate.discrimination import auroc
from flute.evaluate.grid import ScoreGrid
from flute.evaluate.summary import summarise_scores


def exact_auroc(y: np.ndarray, p: np.ndarray) -> float:
    """Mann-Whitney AUROC on raw scores by midranks (ties count 1/2)."""
    from scipy.stats import rankdata

    y = np.asarray(y).astype(bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        raise ValueError(f"exact_auroc needs both classes; got {n1} events and {n0} non-events")
    ranks = rankdata(np.asarray(p, dtype=np.float64))
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def exact_calibration(y: np.ndarray, p: np.ndarray, grid: ScoreGrid) -> CalibrationFit:
    """Calibration intercept and slope fitted on every patient (logits clipped as the grid does)."""
    y = np.asarray(y, dtype=np.float64)
    return fit_calibration(WeightedPoints(x=grid.clipped_logit(np.asarray(p, dtype=np.float64)), y=y,
                                          weights=np.ones_like(y)))


@dataclass(frozen=True)
class AccuracyVersusExact:
    """Histogram-based vs patient-level AUROC and calibration on the same scores."""

    auroc_histogram: float
    auroc_exact: float
    auroc_error_bound: float
    intercept_histogram: float
    intercept_exact: float
    slope_histogram: float
    slope_exact: float

    @property
    def auroc_error(self) -> float:
        return abs(self.auroc_histogram - self.auroc_exact)

    @property
    def intercept_error(self) -> float:
        return abs(self.intercept_histogram - self.intercept_exact)

    @property
    def slope_error(self) -> float:
        return abs(self.slope_histogram - self.slope_exact)


def accuracy_versus_exact(y: np.ndarray, p: np.ndarray, grid: ScoreGrid) -> AccuracyVersusExact:
    """Compute both ways and return them side by side (for tests and benchmarks)."""
    summary = summarise_scores(y, p, grid)
    histogram_auroc = auroc(summary)
    histogram_calibration = calibration(summary)
    reference_calibration = exact_calibration(y, p, grid)
    return AccuracyVersusExact(
        auroc_histogram=histogram_auroc.value,
        auroc_exact=exact_auroc(y, p),
        auroc_error_bound=histogram_auroc.error_bound,
        intercept_histogram=histogram_calibration.intercept.value,
        intercept_exact=reference_calibration.intercept.value,
        slope_histogram=histogram_calibration.slope.value,
        slope_exact=reference_calibration.slope.value,
    )
