"""Between-hospital heterogeneity: DerSimonian-Laird random-effects summaries (TRIPOD-Cluster).

A pooled AUROC hides whether the model works equally well at every hospital. TRIPOD-Cluster
asks for a random-effects summary of site-level performance with a 95 % CI (where the average
site lies) and a 95 % prediction interval (where a *new* site's performance may lie).

Site AUROCs are pooled on the logit scale (their sampling distribution is closer to normal there,
Debray et al. BMJ 2017/2019) and back-transformed; calibration slopes are pooled as they are.
The prediction interval follows Higgins, Thompson & Spiegelhalter (2009): estimate +-
t_{k-2, 0.975} * sqrt(tau^2 + SE^2); it needs at least 3 sites.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from flute.evaluate.calibration import Estimate
from flute.evaluate.discrimination import Z_975, AurocEstimate
from flute.evaluate.grid import expit, logit


@dataclass(frozen=True)
class RandomEffectsSummary:
    """DerSimonian-Laird summary, reported on the metric's natural scale.

    `prediction_low`/`prediction_high` are None with fewer than 3 sites (no t quantile with
    k - 2 < 1 degrees of freedom). `tau_squared`, `q` and `i_squared` are on the pooling scale.
    """

    estimate: float
    ci_low: float
    ci_high: float
    prediction_low: float | None
    prediction_high: float | None
    tau_squared: float
    q: float
    i_squared: float
    k: int


def dersimonian_laird(
    estimates: Sequence[float],
    variances: Sequence[float],
    back_transform: Callable[[float], float] = float,
) -> RandomEffectsSummary:
    """Random-effects pooling of per-site estimates with known within-site variances."""
    theta = np.asarray(estimates, dtype=np.float64)
    v = np.asarray(variances, dtype=np.float64)
    if theta.ndim != 1 or theta.shape != v.shape or theta.size < 2:
        raise ValueError(
            f"dersimonian_laird: need at least 2 sites with one estimate and one variance each, "
            f"got {theta.size} estimates and {v.size} variances"
        )
    if not (np.all(np.isfinite(theta)) and np.all(np.isfinite(v)) and np.all(v > 0)):
        raise ValueError(
            "dersimonian_laird: estimates must be finite and variances finite and > 0 "
            f"(got estimates {theta.tolist()}, variances {v.tolist()})"
        )
    k = theta.size
    w = 1.0 / v
    fixed = float(np.sum(w * theta) / np.sum(w))
    q = float(np.sum(w * (theta - fixed) ** 2))
    c = float(np.sum(w) - np.sum(w**2) / np.sum(w))
    tau2 = max(0.0, (q - (k - 1)) / c)
    i2 = max(0.0, (q - (k - 1)) / q) if q > 0 else 0.0
    w_random = 1.0 / (v + tau2)
    pooled = float(np.sum(w_random * theta) / np.sum(w_random))
    se = float(np.sqrt(1.0 / np.sum(w_random)))
    prediction_low = prediction_high = None
    if k >= 3:
        from scipy.stats import t as student_t

        half = float(student_t.ppf(0.975, k - 2)) * float(np.sqrt(tau2 + se**2))
        prediction_low, prediction_high = back_transform(pooled - half), back_transform(pooled + half)
    return RandomEffectsSummary(
        estimate=back_transform(pooled),
        ci_low=back_transform(pooled - Z_975 * se),
        ci_high=back_transform(pooled + Z_975 * se),
        prediction_low=prediction_low,
        prediction_high=prediction_high,
        tau_squared=tau2,
        q=q,
        i_squared=i2,
        k=k,
    )


def pool_aurocs(site_aurocs: Sequence[AurocEstimate]) -> RandomEffectsSummary:
    """Random-effects summary AUROC (pooled on the logit scale, back-transformed)."""
    return dersimonian_laird(
        [float(logit(a.value)) for a in site_aurocs],
        [a.logit_standard_error**2 for a in site_aurocs],
        back_transform=lambda value: float(expit(value)),
    )


def pool_calibration_slopes(site_slopes: Sequence[Estimate]) -> RandomEffectsSummary:
    """Random-effects summary calibration slope."""
    return dersimonian_laird([s.value for s in site_slopes], [s.standard_error**2 for s in site_slopes])
