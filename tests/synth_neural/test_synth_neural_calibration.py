"""Marginal calibration of neural outputs (F-IMSD-13, NF-IMSD-4): the fitted monotone map turns a
generator's too-wide, shifted raw scores into normal scores, keeps their order, inverts, leaves
infinite guidance bounds infinite and round-trips through JSON."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import kstest

from flute.synth.neural.calibration import MarginalCalibration


@pytest.fixture(scope="module")
def raw() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.column_stack([3 * rng.normal(size=20_000) + 1, rng.exponential(size=20_000)])


def test_raw_scores_become_normal_and_keep_their_order(raw: np.ndarray) -> None:
    calibration = MarginalCalibration.fit(raw)
    z = calibration.apply(raw)
    for column in range(raw.shape[1]):
        assert kstest(z[:, column], "norm").statistic < 0.01
        assert np.all(np.diff(z[np.argsort(raw[:, column]), column]) >= 0)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-3.0, 3.0), min_size=2, max_size=2))
def test_invert_undoes_apply(raw: np.ndarray, z: list[float]) -> None:
    calibration = MarginalCalibration.fit(raw)
    assert calibration.apply(calibration.invert(np.array(z))) == pytest.approx(z, abs=1e-6)


def test_bounds_and_json(raw: np.ndarray) -> None:
    calibration = MarginalCalibration.fit(raw)
    assert calibration.invert(np.array([-np.inf, np.inf])).tolist() == [-np.inf, np.inf]
    assert MarginalCalibration.from_json(calibration.to_json()) == calibration
    with pytest.raises(ValueError, match="strictly increasing"):
        MarginalCalibration.from_json([[0.0, 0.0]])
