"""AUROC with a DeLong 95 % CI, and the ROC curve, from a pooled score histogram.

AUROC is the Mann-Whitney statistic: the share of (event, non-event) pairs in which the event
has the higher risk, ties counting 1/2. From a histogram, pairs in different bins are ordered
exactly; pairs within one bin are counted as ties. Hence

    |AUROC_histogram - AUROC_exact| <= 1/2 * sum_b events_b * nonevents_b / (n_events * n_nonevents),

the `error_bound` reported with every estimate (zero contribution from genuinely tied scores).

DeLong's variance uses placement values: for an event in bin b, the share of non-events below
it (those in b count 1/2); for a non-event in bin b, the share of events above it. Both are
exact functions of the bin counts, so the DeLong SE from the histogram equals the patient-level
DeLong SE whenever no bin mixes distinct scores of opposite classes, and is within the same
order as the AUROC error otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flute.evaluate.summary import ScoreSummary

Z_975 = 1.959963984540054
"""Standard normal 97.5 % quantile (two-sided 95 % intervals)."""


@dataclass(frozen=True)
class AurocEstimate:
    """AUROC, its DeLong standard error and 95 % CI (AUROC +- 1.96 SE, clipped to [0, 1])."""

    value: float
    standard_error: float
    ci_low: float
    ci_high: float
    error_bound: float

    @property
    def logit_standard_error(self) -> float:
        """SE of logit(AUROC) by the delta method: the scale on which site AUROCs are pooled."""
        return self.standard_error / (self.value * (1.0 - self.value))


@dataclass(frozen=True)
class RocCurve:
    """True- and false-positive rates when calling "positive" all risks >= each bin edge."""

    false_positive_rate: np.ndarray
    true_positive_rate: np.ndarray


def _require_both_classes(summary: ScoreSummary) -> None:
    if summary.n_events == 0 or summary.n_nonevents == 0:
        raise ValueError(
            f"AUROC needs events and non-events; this summary has {summary.n_events} events and "
            f"{summary.n_nonevents} non-events"
        )


def auroc(summary: ScoreSummary) -> AurocEstimate:
    """Mann-Whitney AUROC with DeLong 95 % CI, from the histogram alone."""
    _require_both_classes(summary)
    events = summary.event_counts.astype(np.float64)
    nonevents = summary.nonevent_counts.astype(np.float64)
    n1, n0 = events.sum(), nonevents.sum()
    nonevents_below = np.cumsum(nonevents) - nonevents
    events_above = events[::-1].cumsum()[::-1] - events
    event_placement = (nonevents_below + 0.5 * nonevents) / n0
    nonevent_placement = (events_above + 0.5 * events) / n1
    value = float(np.dot(events, event_placement) / n1)
    variance = 0.0
    if n1 > 1:
        variance += float(np.dot(events, (event_placement - value) ** 2) / (n1 - 1)) / n1
    if n0 > 1:
        variance += float(np.dot(nonevents, (nonevent_placement - value) ** 2) / (n0 - 1)) / n0
    se = float(np.sqrt(variance))
    bound = float(0.5 * np.dot(events, nonevents) / (n1 * n0))
    return AurocEstimate(
        value=value,
        standard_error=se,
        ci_low=max(0.0, value - Z_975 * se),
        ci_high=min(1.0, value + Z_975 * se),
        error_bound=bound,
    )


def roc_curve(summary: ScoreSummary) -> RocCurve:
    """ROC points at every non-empty bin's lower edge, from (0, 0) to (1, 1)."""
    _require_both_classes(summary)
    occupied = (summary.event_counts + summary.nonevent_counts) > 0
    events_at_or_above = summary.event_counts[::-1].cumsum()[::-1][occupied]
    nonevents_at_or_above = summary.nonevent_counts[::-1].cumsum()[::-1][occupied]
    tpr = np.concatenate(([0.0], events_at_or_above[::-1] / summary.n_events))
    fpr = np.concatenate(([0.0], nonevents_at_or_above[::-1] / summary.n_nonevents))
    return RocCurve(false_positive_rate=fpr, true_positive_rate=tpr)
