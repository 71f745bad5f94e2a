"""Fixtures of the federated-validation tests: the default grid and every score distribution."""

from __future__ import annotations

import numpy as np
import pytest

from flute.evaluate.grid import ScoreGrid

from .score_distributions import DISTRIBUTIONS


@pytest.fixture(scope="session")
def grid() -> ScoreGrid:
    return ScoreGrid()


@pytest.fixture(params=sorted(DISTRIBUTIONS), scope="session")
def scores(request: pytest.FixtureRequest) -> tuple[str, np.ndarray, np.ndarray]:
    """(name, y, p) for every distribution, with a fixed seed per distribution."""
    name = request.param
    y, p = DISTRIBUTIONS[name](np.random.default_rng(sorted(DISTRIBUTIONS).index(name) + 11))
    return name, y, p
