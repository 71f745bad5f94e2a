"""Fixed published reference models that a federated csPCa model is compared with (F-PIL-15).

The BCN-style reference approximates the Barcelona MRI risk calculator (BCN-RC 2; Morote et al.,
Cancers 2022;14(6):1589) with the closest published equation of the same group: the odds ratios
of Morote et al., Sci Rep 2025, doi 10.1038/s41598-025-88297-6 (n=4,799). It is NOT the published
calculator: neither paper gives an intercept, and the Sci Rep model's PSA term is a 5-knot spline
whose knots are not published. Here

- PSA enters as log(PSA) with coefficient 1.3 (odds x2.46 per doubling of PSA): a documented
  assumption, chosen so that, with the published odds ratios, csPCa vs non-csPCa PSA medians
  come out near the published 8.0 vs 6.3 ng/mL (../shared/docs/clinical-anchors.md). The
  simulated pilot sites do NOT follow this equation: each has its own true model
  (`flute.cohort.risk_model`: PSA density, site-specific PI-RADS reading and DRE), so on the
  simulated cohort the reference plays a published model transported to new hospitals;
- the intercept is not fixed: the engine recalibrates it on each training fold
  (calibration-in-the-large: the intercept that makes predicted and observed csPCa counts agree,
  from summed counts over the hubs), so the comparator is calibrated where it is compared;
- a missing predictor takes a fixed reference value of the Catalan development cohort (below), so
  every hub scores a patient identically without any federated statistic.

Coefficients live here and nowhere else; the engine, tests and benchmarks read them from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Mapping, Sequence

import numpy as np

from flute.cohort.variables import AGE, BIOPSY_TYPE, DRE, FAMILY_HISTORY, PIRADS, PROSTATE_VOLUME, PSA
from flute.learn.aggregation import LocalStep, OptimiserState, pooled_newton_sums
from flute.learn.logistic import ConvergenceError, LogisticObjective, NewtonSums, RoundOutcome

SOURCE: Final = "Morote et al., Sci Rep 2025, doi 10.1038/s41598-025-88297-6 (odds ratios); log-PSA coefficient assumed"


@dataclass(frozen=True)
class BcnReference:
    """Log-odds coefficients of the BCN-style reference (no intercept: it is recalibrated)."""

    age_per_year: float = float(np.log(1.059))
    volume_per_ml: float = float(np.log(0.974))
    suspicious_dre: float = float(np.log(2.599))
    family_history: float = float(np.log(1.673))
    repeat_biopsy: float = float(np.log(0.696))
    pirads_vs_1: tuple[float, ...] = tuple(float(np.log(odds)) for odds in (1.0, 1.279, 1.839, 6.755, 18.758))
    log_psa: float = 1.3

    variables: tuple[str, ...] = (AGE, PSA, PROSTATE_VOLUME, DRE, FAMILY_HISTORY, BIOPSY_TYPE, PIRADS)


BCN_REFERENCE: Final[BcnReference] = BcnReference()

#: Values a missing predictor takes (Catalan development cohort, Sci Rep 2025 Table 2: overall
#: medians / most frequent category): age 68, PSA 7.0 ng/mL, volume 55 mL, DRE normal, no family
#: history, initial biopsy, PI-RADS 4.
REFERENCE_IMPUTATION: Final[Mapping[str, float]] = {
    AGE: 68.0,
    PSA: 7.0,
    PROSTATE_VOLUME: 55.0,
    DRE: 0.0,
    FAMILY_HISTORY: 0.0,
    BIOPSY_TYPE: 0.0,
    PIRADS: 4.0,
}


class ReferenceInputError(ValueError):
    """Features the reference cannot score; the message names the column and the problem."""


def reference_linear_predictor(features: np.ndarray, columns: tuple[str, ...], reference: BcnReference = BCN_REFERENCE) -> np.ndarray:
    """Log-odds of csPCa without intercept, per row of raw features (NaN = missing)."""
    missing = [name for name in reference.variables if name not in columns]
    if missing:
        raise ReferenceInputError(f"the BCN-style reference needs the study variables {missing}, which the table lacks")

    def column(name: str) -> np.ndarray:
        values = features[:, columns.index(name)]
        return np.where(np.isnan(values), REFERENCE_IMPUTATION[name], values)

    psa, pirads = column(PSA), column(PIRADS)
    if np.any(psa <= 0):
        raise ReferenceInputError(f"column {PSA!r} has values <= 0, which have no logarithm; correct the data")
    if not np.all(np.isin(pirads, (1.0, 2.0, 3.0, 4.0, 5.0))):
        raise ReferenceInputError(f"column {PIRADS!r} holds values outside 1..5")
    return (
        reference.age_per_year * column(AGE)
        + reference.volume_per_ml * column(PROSTATE_VOLUME)
        + reference.suspicious_dre * column(DRE)
        + reference.family_history * column(FAMILY_HISTORY)
        + reference.repeat_biopsy * (column(BIOPSY_TYPE) > 0)
        + reference.log_psa * np.log(psa)
        + np.asarray(reference.pirads_vs_1)[pirads.astype(np.int64) - 1]
    )


#: Weights of the recalibration model on the single input "reference log-odds": intercept 0 to
#: start, slope fixed at 1 (the published coefficients are kept as they are).
RECALIBRATION_START: Final = np.array([0.0, 1.0])


class InterceptRecalibration:
    """Calibration-in-the-large of a fixed model, as a federated Newton aggregator: the hubs send
    the usual Newton sums of the one-input logistic model [intercept, slope 1] on the reference
    log-odds; only the intercept moves, to the root of sum(p_i) = sum(y_i) over the summed rows.
    Converges in a few rounds (the problem is one-dimensional and concave)."""

    local_step = LocalStep.NEWTON

    def initial_state(self, weights: np.ndarray) -> OptimiserState:
        return {}

    def aggregate(
        self, weights: np.ndarray, results: Sequence[NewtonSums], objective: LogisticObjective, state: OptimiserState
    ) -> tuple[RoundOutcome, OptimiserState]:
        total = pooled_newton_sums(results)
        if total.weight_total <= 0 or total.hessian[0, 0] <= 0:
            raise ConvergenceError("no rows (or no curvature) to recalibrate the reference intercept on")
        gradient = total.gradient[0] / total.weight_total
        step = total.gradient[0] / total.hessian[0, 0]
        updated = weights.copy()
        updated[0] -= step
        return RoundOutcome(updated, total.loss_total / total.weight_total, abs(float(gradient))), state
