"""Coordinator side: every validation metric of one (pooled or per-site) score histogram.

`evaluate_summary` is the single entry point the engine and the report use; it needs nothing
but a `ScoreSummary`, i.e. additive aggregates released by hubs (F-PIL-11, F-PIL-22), and it
covers what TRIPOD+AI asks of a validation: n and prevalence, discrimination (AUROC, DeLong CI),
calibration (intercept, slope, grouped curve) and clinical utility (decision curve, operating
point at the 15 % biopsy threshold) - the figures on which F-PIL-15 (beat BCN-RC 1/2) is judged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from flute.evaluate.calibration import CalibrationFit, CalibrationGroup, calibration, calibration_curve
from flute.evaluate.decision import (
    DECISION_THRESHOLDS,
    OPERATING_THRESHOLD,
    NetBenefitPoint,
    OperatingPoint,
    decision_curve,
    operating_point,
)
from flute.evaluate.discrimination import AurocEstimate, auroc
from flute.evaluate.logistic import LogisticFitError
from flute.evaluate.summary import ScoreSummary


@dataclass(frozen=True)
class EvaluationMetrics:
    """All metrics of one score histogram. `calibration` is None when the calibration models
    have no finite estimate (outcomes perfectly separated by the risk); `calibration_problem`
    then says why."""

    n: int
    events: int
    auroc: AurocEstimate
    calibration: CalibrationFit | None
    calibration_problem: str | None
    calibration_curve: tuple[CalibrationGroup, ...]
    decision_curve: tuple[NetBenefitPoint, ...]
    operating_point: OperatingPoint

    @property
    def prevalence(self) -> float:
        return self.events / self.n


def evaluate_summary(
    summary: ScoreSummary,
    *,
    decision_thresholds: Sequence[float] = DECISION_THRESHOLDS,
    operating_threshold: float = OPERATING_THRESHOLD,
    calibration_groups: int = 10,
) -> EvaluationMetrics:
    """Compute every metric from the histogram alone. Raises ValueError when a class is absent."""
    try:
        fit, problem = calibration(summary), None
    except LogisticFitError as error:
        fit, problem = None, str(error)
    return EvaluationMetrics(
        n=summary.n,
        events=summary.n_events,
        auroc=auroc(summary),
        calibration=fit,
        calibration_problem=problem,
        calibration_curve=calibration_curve(summary, calibration_groups),
        decision_curve=decision_curve(summary, decision_thresholds),
        operating_point=operating_point(summary, operating_threshold),
    )
