"""Calibration intercept, slope and grouped calibration curve, from a pooled score histogram.

Both calibration models regress the outcome on x = logit(predicted risk) (clipped to the grid's
logit limit):
- calibration-in-the-large (intercept): logit P(y=1) = a + x, x as an offset; a = 0 when the
  mean predicted risk matches the observed rate (on the logit scale);
- calibration slope: logit P(y=1) = a' + b x; b = 1 ideal, b < 1 means predictions too extreme.

Each bin contributes two weighted points: its events at their exact mean logit (weight = event
count) and its non-events at theirs. The score equation's sum_i y_i x_i is then exact, and the
remaining sums of sigma(a + b x_i) are approximated to second order in the bin width.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flute.evaluate.discrimination import Z_975
from flute.evaluate.grid import expit
from flute.evaluate.logistic import LogisticFit, LogisticFitError, fit_weighted_logistic
from flute.evaluate.summary import ScoreSummary


@dataclass(frozen=True)
class Estimate:
    """A point estimate with standard error and Wald 95 % CI."""

    value: float
    standard_error: float

    @property
    def ci_low(self) -> float:
        return self.value - Z_975 * self.standard_error

    @property
    def ci_high(self) -> float:
        return self.value + Z_975 * self.standard_error


@dataclass(frozen=True)
class CalibrationFit:
    """Calibration-in-the-large intercept (offset model) and calibration slope."""

    intercept: Estimate
    slope: Estimate


@dataclass(frozen=True)
class CalibrationGroup:
    """One risk group of the calibration curve: predicted vs observed risk with a Wilson 95 % CI."""

    risk_low: float
    risk_high: float
    n: int
    events: int
    mean_predicted: float
    observed: float
    observed_ci_low: float
    observed_ci_high: float


@dataclass(frozen=True)
class WeightedPoints:
    """Logistic-regression data: predictor x, outcome y (0/1) and weight per point."""

    x: np.ndarray
    y: np.ndarray
    weights: np.ndarray


def histogram_points(summary: ScoreSummary) -> WeightedPoints:
    """Each non-empty (bin, class) as one point at the class's mean logit in that bin."""
    event_means, nonevent_means = summary.mean_logits()
    has_events = summary.event_counts > 0
    has_nonevents = summary.nonevent_counts > 0
    return WeightedPoints(
        x=np.concatenate((event_means[has_events], nonevent_means[has_nonevents])),
        y=np.concatenate((np.ones(int(has_events.sum())), np.zeros(int(has_nonevents.sum())))),
        weights=np.concatenate(
            (summary.event_counts[has_events], summary.nonevent_counts[has_nonevents])
        ).astype(np.float64),
    )


def _estimate(fit: LogisticFit, index: int) -> Estimate:
    return Estimate(float(fit.coefficients[index]), float(fit.standard_errors[index]))


def _outcomes_separated(points: WeightedPoints) -> bool:
    """True when a cut on x puts every event on one side and every non-event on the other
    (ties at the cut included): the slope's likelihood then has no finite maximum."""
    present = points.weights > 0
    events = points.x[present & (points.y == 1)]
    nonevents = points.x[present & (points.y == 0)]
    if events.size == 0 or nonevents.size == 0:
        return False  # reported by the fitter as a missing outcome class
    return bool(events.min() >= nonevents.max() or nonevents.min() >= events.max())


def fit_calibration(points: WeightedPoints) -> CalibrationFit:
    """Calibration intercept (offset model) and slope on weighted points (bins or raw patients)."""
    if _outcomes_separated(points):
        raise LogisticFitError(
            "the predicted risks separate the outcomes (every csPCa case scores at or above every "
            "non-case, or the reverse), so the calibration slope is infinite and not estimable"
        )
    ones = np.ones((points.x.size, 1))
    in_the_large = fit_weighted_logistic(ones, points.y, points.weights, offset=points.x)
    slope_model = fit_weighted_logistic(np.column_stack((ones, points.x)), points.y, points.weights)
    return CalibrationFit(intercept=_estimate(in_the_large, 0), slope=_estimate(slope_model, 1))


def calibration(summary: ScoreSummary) -> CalibrationFit:
    """Calibration intercept and slope from the histogram alone."""
    return fit_calibration(histogram_points(summary))


def wilson_interval(events: int, n: int) -> tuple[float, float]:
    """Wilson score 95 % interval for a proportion: sane at 0 % and 100 % unlike Wald."""
    if n == 0:
        return (float("nan"), float("nan"))
    proportion = events / n
    z2 = Z_975**2
    centre = (proportion + z2 / (2 * n)) / (1 + z2 / n)
    half = Z_975 * np.sqrt(proportion * (1 - proportion) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    # Clamp so the interval always contains the observed proportion: at 0 or n events the
    # closed form is off by rounding (e.g. 5.6e-17 > 0), which would invert an error bar.
    lower = min(proportion, max(0.0, centre - half))
    upper = max(proportion, min(1.0, centre + half))
    return (float(lower), float(upper))


def calibration_curve(summary: ScoreSummary, n_groups: int = 10) -> tuple[CalibrationGroup, ...]:
    """Observed vs mean predicted risk in (up to) `n_groups` groups of equal size by predicted risk.

    Groups are unions of whole bins (a bin is assigned by the rank of its midpoint), so groups
    are only approximately equal when many patients share a bin, and fewer groups are returned
    when the scores take fewer distinct values (e.g. a 5-level score).
    """
    if n_groups < 1:
        raise ValueError(f"calibration_curve: n_groups must be >= 1, got {n_groups}")
    if summary.n == 0:
        raise ValueError("calibration_curve: the summary holds no patients")
    counts = summary.event_counts + summary.nonevent_counts
    midpoint_rank = np.cumsum(counts) - counts / 2.0
    group_of_bin = np.minimum((midpoint_rank * n_groups / summary.n).astype(np.int64), n_groups - 1)
    event_means, nonevent_means = summary.mean_logits()
    # Empty bins have NaN means and zero counts: zero them before expit so they add nothing.
    predicted_sum = summary.event_counts * expit(np.nan_to_num(event_means)) + summary.nonevent_counts * expit(
        np.nan_to_num(nonevent_means)
    )
    edges = summary.grid.edges
    groups = []
    for group in range(n_groups):
        bins = np.flatnonzero((group_of_bin == group) & (counts > 0))
        if bins.size == 0:
            continue
        n = int(counts[bins].sum())
        events = int(summary.event_counts[bins].sum())
        low, high = wilson_interval(events, n)
        groups.append(
            CalibrationGroup(
                risk_low=float(edges[bins[0]]),
                risk_high=float(edges[bins[-1] + 1]),
                n=n,
                events=events,
                mean_predicted=float(predicted_sum[bins].sum() / n),
                observed=events / n,
                observed_ci_low=low,
                observed_ci_high=high,
            )
        )
    return tuple(groups)
