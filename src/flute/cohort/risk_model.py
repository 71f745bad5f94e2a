"""The csPCa risk models that decide simulated outcomes: one true model per pilot hospital.

Why per hospital: a published calculator transported to new hospitals loses discrimination
(BCN-RC 2: AUROC 0.897 at development, 0.858 at external validation; PI-RADS alone 0.842 ->
0.743; ten Catalan centres 0.847 / 0.830; ../shared/docs/clinical-anchors.md), because each
hospital's MRI reading, examination and referral make the risk relations differ from the
development cohort's. If every simulated site drew outcomes from the published equation, the
BCN-style reference of `flute.learn.reference_models` would BE the data-generating model and no
trained model could beat it; F-PIL-15 ("beat BCN-RC") could not be judged. So each site's true
model starts from the published odds ratios (Morote et al., Sci Rep 2025, doi
10.1038/s41598-025-88297-6, n=4,799) and deviates from them where published evidence says
hospitals differ. Every number is documented where it is defined (`sites.py` holds which site
has which model):

- PSA enters as PSA DENSITY (PSA / prostate volume) at every site, log-odds
  `PSA_DENSITY_LOG_ODDS` per natural-log unit: the clinical literature's strongest single
  predictor (development cohort medians 0.18 vs 0.10 ng/mL/mL in csPCa vs not; MRI PSA density
  alone AUROC 0.764 in 2,432 men). The value 2.0 is the one at which, with the case-mix
  correlations of `sim_patients`, PSA density alone reaches AUROC ~0.78 at every site and the
  csPCa vs non-csPCa PSA density medians differ by a factor ~1.7-2.0, as published. The Sci Rep
  model's own PSA term is a 5-knot spline whose knots are unpublished, and its volume term is
  linear (OR 0.974/mL); PSA density is a different, published, functional form of the same two
  measurements. No further non-linearity is invented: nothing published pins its shape.
- PI-RADS is read differently at each centre (reader calibration): the positive predictive
  value of PI-RADS >= 4 for csPCa was 49 % overall with an inter-centre interquartile range of
  27-48 % across 26 centres (Westphalen et al., Radiology 2020;296:76-84, doi
  10.1148/radiol.2020190646), and csPCa rates by PI-RADS 1..5 differ between the Catalan cohort
  (11.5/15.2/16.9/48.8/81.8 %), a 70-study meta-analysis (6/5/19/54/84 %) and PI-CAI
  (0.7/1.5/12.6/41.5/66.1 %). A site's PI-RADS odds ratios come from one of these: the published
  adjusted ones, or crude log odds ratios vs PI-RADS 1 from a rate series, shrunk by 0.83 (the
  Catalan ratio of adjusted to crude log OR at PI-RADS 5: ln 18.758 / ln 34.6), see
  `pirads_odds_from_rates`.
- Suspicious DRE: the published OR 2.6 at the development centre; lower elsewhere (DRE is
  examiner-dependent). No site-level figure is published: these are assumptions, stated as such.
- Age, family history and repeat biopsy keep the published odds ratios everywhere.

No intercept is published either: it is solved per site so that the site hits its chosen
prevalence among included men.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

#: Log-odds of csPCa per natural-log unit of PSA density (ng/mL per mL), at every site.
PSA_DENSITY_LOG_ODDS: Final[float] = 2.0

#: Published adjusted PI-RADS 2..5 vs 1 odds ratios (Sci Rep 2025).
PUBLISHED_PIRADS_ODDS: Final[tuple[float, float, float, float, float]] = (1.0, 1.279, 1.839, 6.755, 18.758)

#: Adjusted / crude log odds ratio of PI-RADS 5 vs 1 in the Catalan cohort: ln 18.758 / ln 34.6
#: (34.6 = crude odds ratio of its csPCa rates 81.8 % vs 11.5 %).
ADJUSTED_TO_CRUDE: Final[float] = float(np.log(18.758) / np.log((0.818 / 0.182) / (0.115 / 0.885)))


def pirads_odds_from_rates(rates: tuple[float, float, float, float, float]) -> tuple[float, float, float, float, float]:
    """Adjusted-scale PI-RADS 1..5 odds ratios vs PI-RADS 1 from a published csPCa rate series:
    crude log odds ratios shrunk by `ADJUSTED_TO_CRUDE` (what adjustment did in the Catalan data)."""
    logits = np.log(np.asarray(rates) / (1.0 - np.asarray(rates)))
    return tuple(float(v) for v in np.exp(ADJUSTED_TO_CRUDE * (logits - logits[0])))  # type: ignore[return-value]


@dataclass(frozen=True)
class SiteRiskModel:
    """One hospital's true csPCa model: odds ratios (log-odds for PSA density), no intercept."""

    source: str  # where the site's deviating numbers come from
    pirads_vs_1: tuple[float, float, float, float, float]
    suspicious_dre: float
    age_per_year: float = 1.059
    family_history: float = 1.673
    repeat_biopsy: float = 0.696
    psa_density_log_odds: float = PSA_DENSITY_LOG_ODDS


@dataclass(frozen=True)
class Predictors:
    """Column arrays of true predictor values for a batch of patients."""

    age: np.ndarray
    psa: np.ndarray
    volume: np.ndarray
    dre: np.ndarray
    family_history: np.ndarray
    repeat_biopsy: np.ndarray
    pirads: np.ndarray


def linear_predictor(x: Predictors, model: SiteRiskModel) -> np.ndarray:
    """Log-odds of csPCa without intercept."""
    pirads_log_or = np.log(np.asarray(model.pirads_vs_1))
    return (
        np.log(model.age_per_year) * x.age
        + model.psa_density_log_odds * np.log(x.psa / x.volume)
        + np.log(model.suspicious_dre) * x.dre
        + np.log(model.family_history) * x.family_history
        + np.log(model.repeat_biopsy) * x.repeat_biopsy
        + pirads_log_or[x.pirads - 1]
    )


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def solve_intercept(lp: np.ndarray, prevalence: float, *, tolerance: float = 1e-10) -> float:
    """Intercept b0 with mean(sigmoid(b0 + lp)) == prevalence (bisection; the mean is monotone in b0)."""
    if not 0.0 < prevalence < 1.0:
        raise ValueError(f"prevalence must lie strictly between 0 and 1, got {prevalence}")
    if lp.size == 0:
        raise ValueError("cannot solve an intercept for an empty cohort")
    low, high = -60.0 - float(lp.max()), 60.0 - float(lp.min())
    while high - low > tolerance:
        mid = 0.5 * (low + high)
        if float(sigmoid(mid + lp).mean()) < prevalence:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)
