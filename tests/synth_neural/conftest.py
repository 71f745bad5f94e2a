"""Small in-memory hubs (fast tests) and simulated pilot hub homes with ledgers (DP charging),
shared by the neural synthetic-data tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flute.synth.federated import SynthHub
from flute.synth.schema import TableSchema, study_schema
from simulated_hubs import simulated_hub_homes
from synth_frames import hub_frame

VARIABLES = ("ageAtBiopsy", "psa", "pirads")
CENTRES = ("a", "b", "c")


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
