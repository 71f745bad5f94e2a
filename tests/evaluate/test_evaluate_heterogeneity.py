"""DerSimonian-Laird random effects against a hand-computed example (TRIPOD-Cluster)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from flute.evaluate.calibration import Estimate
from flute.evaluate.discrimination import AurocEstimate
from flute.evaluate.heterogeneity import dersimonian_laird, pool_aurocs, pool_calibration_slopes


def test_dersimonian_laird_hand_computed_example() -> None:
    # estimates 0, 1, 2 with variances 0.1, 0.2, 0.4 -> weights 10, 5, 2.5 (sum 17.5)
    # fixed effect: (0*10 + 1*5 + 2*2.5) / 17.5 = 4/7
    # Q = 10*(4/7)^2 + 5*(3/7)^2 + 2.5*(10/7)^2 = 65/7;  C = 17.5 - 131.25/17.5 = 10
    # tau^2 = (65/7 - 2) / 10 = 51/70;  I^2 = (65/7 - 2) / (65/7) = 51/65
    tau2 = Fraction(51, 70)
    w = [1 / (Fraction(1, 10) + tau2), 1 / (Fraction(2, 10) + tau2), 1 / (Fraction(4, 10) + tau2)]
    pooled = (0 * w[0] + 1 * w[1] + 2 * w[2]) / sum(w)  # = 0.898791...
    se = float(1 / sum(w)) ** 0.5  # = 0.561670...
    t_1 = 12.706204736174698  # Student t, 1 df, 97.5 %
    result = dersimonian_laird([0.0, 1.0, 2.0], [0.1, 0.2, 0.4])
    assert result.q == pytest.approx(65 / 7)
    assert result.tau_squared == pytest.approx(51 / 70)
    assert result.i_squared == pytest.approx(51 / 65)
    assert result.estimate == pytest.approx(float(pooled)) and result.estimate == pytest.approx(0.898791, abs=1e-6)
    assert result.ci_low == pytest.approx(float(pooled) - 1.959963984540054 * se)
    assert result.ci_high == pytest.approx(float(pooled) + 1.959963984540054 * se)
    half = t_1 * (float(tau2) + se**2) ** 0.5
    assert result.prediction_low == pytest.approx(float(pooled) - half)
    assert result.prediction_high == pytest.approx(float(pooled) + half)
    assert result.k == 3


def test_homogeneous_sites_reduce_to_the_fixed_effect_and_two_sites_have_no_prediction_interval() -> None:
    result = dersimonian_laird([0.50, 0.52], [0.01, 0.04])
    assert result.tau_squared == 0.0 and result.i_squared == 0.0
    assert result.estimate == pytest.approx((0.50 * 100 + 0.52 * 25) / 125)
    assert result.prediction_low is None and result.prediction_high is None


def test_auroc_is_pooled_on_the_logit_scale_and_back_transformed() -> None:
    aurocs = [AurocEstimate(a, se, a - 0.05, a + 0.05, 0.0) for a, se in [(0.80, 0.02), (0.85, 0.03), (0.90, 0.015)]]
    logits = [np.log(a.value / (1 - a.value)) for a in aurocs]
    variances = [(a.standard_error / (a.value * (1 - a.value))) ** 2 for a in aurocs]
    on_logit = dersimonian_laird(logits, variances)
    pooled = pool_aurocs(aurocs)
    assert pooled.estimate == pytest.approx(1 / (1 + np.exp(-on_logit.estimate)))
    assert pooled.prediction_low == pytest.approx(1 / (1 + np.exp(-on_logit.prediction_low)))
    assert 0 < pooled.prediction_low < pooled.ci_low < pooled.estimate < pooled.ci_high < pooled.prediction_high < 1


def test_slopes_pool_on_their_own_scale_and_bad_input_is_refused() -> None:
    slopes = [Estimate(0.9, 0.1), Estimate(1.1, 0.1), Estimate(1.0, 0.2)]
    assert pool_calibration_slopes(slopes).estimate == pytest.approx(dersimonian_laird([0.9, 1.1, 1.0], [0.01, 0.01, 0.04]).estimate)
    with pytest.raises(ValueError, match="at least 2 sites"):
        dersimonian_laird([1.0], [0.1])
    with pytest.raises(ValueError, match="variances finite and > 0"):
        dersimonian_laird([1.0, 2.0], [0.1, 0.0])
