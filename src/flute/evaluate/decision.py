"""Clinical utility from a pooled score histogram: decision curves and the biopsy operating point.

A man is sent to biopsy when his predicted csPCa risk is >= the threshold t. Net benefit
(Vickers & Elkin 2006) weighs true positives against false positives at the odds t / (1 - t):

    NB_model(t) = TP/n - FP/n * t/(1-t);  NB_all(t) = prevalence - (1 - prevalence) * t/(1-t);  NB_none = 0.

Thresholds must be edges of the score grid (every whole percent is, by default), which makes
every count here exact - identical to the patient-level computation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from flute.evaluate.summary import ScoreSummary

DECISION_THRESHOLDS: tuple[float, ...] = tuple(k / 100 for k in range(5, 31))
"""5 % ... 30 %: the range of biopsy thresholds clinicians consider for csPCa."""

OPERATING_THRESHOLD = 0.15
"""Biopsy threshold at which the Barcelona calculators report biopsies avoided / csPCa missed."""


@dataclass(frozen=True)
class ConfusionCounts:
    """Counts when biopsying every risk >= threshold."""

    threshold: float
    true_positives: int
    false_positives: int
    true_negatives: int
    false_negatives: int

    @property
    def n(self) -> int:
        return self.true_positives + self.false_positives + self.true_negatives + self.false_negatives

    @property
    def net_benefit(self) -> float:
        """TP/n - FP/n * t/(1-t): true positives net of false positives weighted by the threshold odds."""
        odds = self.threshold / (1.0 - self.threshold)
        return (self.true_positives - self.false_positives * odds) / self.n


@dataclass(frozen=True)
class NetBenefitPoint:
    """Net benefit of the model, biopsy-all and biopsy-none at one threshold."""

    threshold: float
    model: float
    biopsy_all: float
    biopsy_none: float

    @property
    def biopsies_avoided_per_100(self) -> float:
        """Net reduction in biopsies per 100 men versus biopsy-all, at equal csPCa detection."""
        odds = self.threshold / (1.0 - self.threshold)
        return 100.0 * (self.model - self.biopsy_all) / odds


def _ratio(numerator: int, denominator: int) -> float:
    """A proportion, NaN when undefined (e.g. PPV when nobody is biopsied)."""
    return numerator / denominator if denominator else float("nan")


@dataclass(frozen=True)
class OperatingPoint:
    """Clinical consequences of biopsying men whose risk is >= threshold."""

    counts: ConfusionCounts

    @property
    def threshold(self) -> float:
        return self.counts.threshold

    @property
    def biopsies_avoided_percent(self) -> float:
        c = self.counts
        return 100.0 * _ratio(c.true_negatives + c.false_negatives, c.n)

    @property
    def cspca_missed_percent(self) -> float:
        """Share of csPCa cases below the threshold (not biopsied): 100 - sensitivity."""
        c = self.counts
        return 100.0 * _ratio(c.false_negatives, c.true_positives + c.false_negatives)

    @property
    def sensitivity(self) -> float:
        c = self.counts
        return _ratio(c.true_positives, c.true_positives + c.false_negatives)

    @property
    def specificity(self) -> float:
        c = self.counts
        return _ratio(c.true_negatives, c.true_negatives + c.false_positives)

    @property
    def positive_predictive_value(self) -> float:
        c = self.counts
        return _ratio(c.true_positives, c.true_positives + c.false_positives)

    @property
    def negative_predictive_value(self) -> float:
        c = self.counts
        return _ratio(c.true_negatives, c.true_negatives + c.false_negatives)


def confusion_counts(summary: ScoreSummary, threshold: float) -> ConfusionCounts:
    """Exact counts at a threshold that is a grid edge (ValueError otherwise)."""
    first_biopsied_bin = summary.grid.edge_index(threshold)
    true_positives = int(summary.event_counts[first_biopsied_bin:].sum())
    false_positives = int(summary.nonevent_counts[first_biopsied_bin:].sum())
    return ConfusionCounts(
        threshold=threshold,
        true_positives=true_positives,
        false_positives=false_positives,
        true_negatives=summary.n_nonevents - false_positives,
        false_negatives=summary.n_events - true_positives,
    )


def decision_curve(
    summary: ScoreSummary, thresholds: Sequence[float] = DECISION_THRESHOLDS
) -> tuple[NetBenefitPoint, ...]:
    """Net benefit of model, biopsy-all and biopsy-none at each threshold."""
    if summary.n == 0:
        raise ValueError("decision_curve: the summary holds no patients")
    prevalence = summary.n_events / summary.n
    points = []
    for threshold in thresholds:
        odds = threshold / (1.0 - threshold)
        points.append(
            NetBenefitPoint(
                threshold=threshold,
                model=confusion_counts(summary, threshold).net_benefit,
                biopsy_all=prevalence - (1.0 - prevalence) * odds,
                biopsy_none=0.0,
            )
        )
    return tuple(points)


def operating_point(summary: ScoreSummary, threshold: float = OPERATING_THRESHOLD) -> OperatingPoint:
    """Biopsies avoided, csPCa missed, sensitivity etc. at the biopsy threshold."""
    return OperatingPoint(confusion_counts(summary, threshold))
