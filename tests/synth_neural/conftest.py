"""Small in-memory hubs (fast tests) and simulated pilot hub homes with ledgers (DP charging),
shared by the neural synthetic-data tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flute.synth.federated import SynthHub
from flute.synth.schema import TableSchema, study_schema
from simulated_hubs import simulated_hub_homes

VARIABLES = ("ageAtBiopsy", "psa", "pirads")
CENTRES = ("a", "b", "c")


def hub_frame(name: str, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Rows with a csPCa signal in PI-RADS and PSA, and some missing ages."""
    pirads = rng.integers(1, 6, n)
    cspca = (rng.random(n) < np.array([0.02, 0.05, 0.15, 0.45, 0.8])[pirads - 1]).astype(int)
    psa = np.round(np.exp(rng.normal(1.7 + 0.3 * cspca, 0.5)), 1)
    age = rng.integers(45, 85, n).astype(float)
    age[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame({"ageAtBiopsy": age, "psa": psa, "pirads": pirads, "centre": name, "csPCa": cspca})


@pytest.fixture(scope="session")
def schema() -> TableSchema:
    return study_schema(VARIABLES, CENTRES)


@pytest.fixture(scope="session")
def hubs() -> list[SynthHub]:
    rng = np.random.default_rng(5)
    return [SynthHub(name, hub_frame(name, n, rng)) for name, n in zip(CENTRES, (120, 80, 60))]


@pytest.fixture(scope="session")
def neural_hub_homes(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return simulated_hub_homes(tmp_path_factory.mktemp("neural-pilot"), seed=11)
