"""Score distributions for the federated-validation tests.

Each generator returns (y, p): outcomes and predicted risks the way a hub would hold them.
"realistic" follows the Catalan csPCa cohort shape in docs/clinical-anchors.md (PI-RADS mix,
published odds ratios, prevalence ~40 %), scored by a slightly mis-calibrated model.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from flute.evaluate.grid import expit

ScoreData = tuple[np.ndarray, np.ndarray]


def binormal(rng: np.random.Generator, n: int = 3000, prevalence: float = 0.4) -> ScoreData:
    """Continuous risks: class-specific normal logits (AUROC ~0.8)."""
    y = (rng.random(n) < prevalence).astype(np.int64)
    logits = rng.normal(np.where(y == 1, 0.9, -0.6), 1.3)
    return y, expit(logits)


def uniform_random(rng: np.random.Generator, n: int = 2000) -> ScoreData:
    """Uninformative risks uniform on [0, 1] (AUROC ~0.5)."""
    return rng.integers(0, 2, n), rng.random(n)


def realistic_cspca(rng: np.random.Generator, n: int = 3063) -> ScoreData:
    """A BCN-style risk model on a simulated cohort with the published PI-RADS mix and odds ratios."""
    pirads = rng.choice(np.arange(1, 6), size=n, p=[0.116, 0.036, 0.251, 0.398, 0.199])
    age = rng.normal(68, 7, n)
    log_psa = rng.normal(np.log(7.0), 0.5, n)
    volume = rng.lognormal(np.log(55), 0.4, n)
    dre = rng.random(n) < 0.278
    family = rng.random(n) < 0.071
    repeat = rng.random(n) < 0.302
    pirads_log_or = np.log([1.0, 1.279, 1.839, 6.755, 18.758])[pirads - 1]
    linear = (
        -3.2 + pirads_log_or + np.log(1.059) * (age - 68) + np.log(0.974) * (volume - 55)
        + 0.9 * (log_psa - np.log(7.0)) + np.log(2.599) * dre + np.log(1.673) * family + np.log(0.696) * repeat
    )
    y = (rng.random(n) < expit(linear + 0.8)).astype(np.int64)
    p = expit(0.85 * linear + 0.6)  # the deployed model is slightly over-confident and shifted
    return y, np.round(p, 4)  # risks reported to 4 decimals, as a scoring service would: many ties


def pirads_only(rng: np.random.Generator, n: int = 2500) -> ScoreData:
    """A 5-level score (PI-RADS mapped to the meta-analysis csPCa rates): nothing but ties."""
    rates = np.array([0.06, 0.05, 0.19, 0.54, 0.84])
    pirads = rng.choice(5, size=n, p=[0.116, 0.036, 0.251, 0.398, 0.199])
    y = (rng.random(n) < rates[pirads]).astype(np.int64)
    return y, rates[pirads]


def extreme_scores(rng: np.random.Generator, n: int = 2000) -> ScoreData:
    """A very confident model: risks of exactly 0 and 1, 1e-12, 1 - 1e-9 and logits up to +-25."""
    y = (rng.random(n) < 0.35).astype(np.int64)
    logits = rng.normal(np.where(y == 1, 4.0, -4.0), 6.0)
    p = expit(logits)
    special = rng.random(n)
    p[special < 0.03] = 0.0
    p[(special >= 0.03) & (special < 0.06)] = 1.0
    p[(special >= 0.06) & (special < 0.08)] = 1e-12
    p[(special >= 0.08) & (special < 0.10)] = 1.0 - 1e-9
    return y, p


def small_site(rng: np.random.Generator, n: int = 120) -> ScoreData:
    """A small hospital: few patients, so every bin holds at most a handful."""
    return binormal(rng, n=n, prevalence=0.3)


DISTRIBUTIONS: dict[str, Callable[[np.random.Generator], ScoreData]] = {
    "binormal": binormal,
    "uniform_random": uniform_random,
    "realistic_cspca": realistic_cspca,
    "pirads_only": pirads_only,
    "extreme_scores": extreme_scores,
    "small_site": small_site,
}
