"""A hub's study rows as the synthetic-data tests use them: a csPCa signal in PI-RADS and PSA, and
some missing ages (one definition for the marginal and the neural generators' tests)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def hub_frame(name: str, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """`n` rows of centre `name`: ageAtBiopsy (5 % missing), psa, pirads, centre, csPCa."""
    pirads = rng.integers(1, 6, n)
    cspca = (rng.random(n) < np.array([0.02, 0.05, 0.15, 0.45, 0.8])[pirads - 1]).astype(int)
    psa = np.round(np.exp(rng.normal(1.7 + 0.3 * cspca, 0.5)), 1)
    age = rng.integers(45, 85, n).astype(float)
    age[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame({"ageAtBiopsy": age, "psa": psa, "pirads": pirads, "centre": name, "csPCa": cspca})
