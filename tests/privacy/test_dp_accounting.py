"""Accounting against dp-accounting computed independently here (URS-6/7/8, NF-HUF-2)."""

from __future__ import annotations

import math

import dp_accounting
import pytest
from dp_accounting import pld
from hypothesis import given, settings
from hypothesis import strategies as st

from flute.privacy.dp.accounting import (
    CALIBRATION_RELATIVE_TOLERANCE,
    calibrate_gaussian_sigma,
    calibrate_noise_multiplier,
    gaussian_mechanism_cost,
    gaussian_mechanism_epsilon,
    gaussian_sgd_cost,
    gaussian_sgd_epsilon,
    gaussian_sgd_epsilon_rdp,
)
from flute.privacy.dp.cost import DpCost


def _reference_pld_epsilon(event: dp_accounting.DpEvent, delta: float) -> float:
    accountant = pld.PLDAccountant()
    accountant.compose(event)
    return accountant.get_epsilon(delta)


def test_dp_sgd_epsilon_is_within_one_percent_of_pld_reference() -> None:
    q, sigma, steps, delta = 0.01, 1.0, 1000, 1e-5
    reference = _reference_pld_epsilon(
        dp_accounting.SelfComposedDpEvent(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps),
        delta,
    )
    ours = gaussian_sgd_epsilon(sigma, q, steps, delta)
    assert abs(ours - reference) <= 0.01 * reference
    assert 1.80 < ours < 1.86  # the published value for this schedule is about 1.83


def test_rdp_is_an_upper_bound_close_to_pld() -> None:
    pld_epsilon = gaussian_sgd_epsilon(1.0, 0.01, 1000, 1e-5)
    rdp_epsilon = gaussian_sgd_epsilon_rdp(1.0, 0.01, 1000, 1e-5)
    assert pld_epsilon <= rdp_epsilon <= 1.25 * pld_epsilon


def test_sgd_cost_states_unit_mechanism_and_cross_check() -> None:
    cost = gaussian_sgd_cost(1.1, 0.02, 100, 1e-5, unit="hub")
    assert cost.unit == "hub" and cost.delta == 1e-5 and cost.mechanism == "poisson-subsampled-gaussian"
    assert cost.details["steps"] == 100 and cost.details["accountant"] == "pld"
    assert cost.epsilon <= float(cost.details["epsilon_rdp"])


def test_calibrated_noise_multiplier_meets_the_target_tightly() -> None:
    target, delta, q, steps = 1.0, 1e-5, 0.02, 100
    multiplier = calibrate_noise_multiplier(target, delta, q, steps)
    assert gaussian_sgd_epsilon(multiplier, q, steps, delta) <= target
    slightly_less = multiplier * (1 - 2 * CALIBRATION_RELATIVE_TOLERANCE)
    assert gaussian_sgd_epsilon(slightly_less, q, steps, delta) > target


def test_full_batch_gaussian_matches_composed_pld() -> None:
    sensitivity, sigma, count, delta = 2.0, 10.0, 4, 1e-6
    reference = _reference_pld_epsilon(dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(sigma / sensitivity), count), delta)
    ours = gaussian_mechanism_epsilon(sensitivity, sigma, count, delta)
    # The analytic value is exact; PLD's pessimistic estimate may only be slightly larger.
    assert ours <= reference <= 1.01 * ours


def test_gaussian_mechanism_cost_records_its_parameters() -> None:
    cost = gaussian_mechanism_cost(1.0, 5.0, 2, 1e-5)
    assert cost.unit == "record" and cost.mechanism == "gaussian"
    assert cost.details == {"sensitivity": 1.0, "sigma": 5.0, "count": 2}
    assert cost.epsilon == gaussian_mechanism_epsilon(1.0, 5.0, 2, 1e-5)


@settings(max_examples=40, deadline=None)
@given(
    target=st.floats(min_value=0.05, max_value=10.0),
    sensitivity=st.floats(min_value=0.01, max_value=100.0),
    count=st.integers(min_value=1, max_value=50),
)
def test_calibrated_sigma_never_exceeds_target(target: float, sensitivity: float, count: int) -> None:
    sigma = calibrate_gaussian_sigma(target, 1e-5, sensitivity, count)
    achieved = gaussian_mechanism_epsilon(sensitivity, sigma, count, 1e-5)
    assert achieved <= target * (1 + 1e-9)
    assert achieved >= target * 0.999


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: gaussian_sgd_epsilon(1.0, 1.5, 10, 1e-5), "sampling_rate"),
        (lambda: gaussian_sgd_epsilon(0.0, 0.1, 10, 1e-5), "noise_multiplier"),
        (lambda: gaussian_sgd_epsilon(1.0, 0.1, 0, 1e-5), "steps"),
        (lambda: gaussian_sgd_epsilon(1.0, 0.1, 10, 0.0), "delta"),
        (lambda: gaussian_mechanism_epsilon(-1.0, 1.0, 1, 1e-5), "sensitivity"),
        (lambda: calibrate_noise_multiplier(math.inf, 1e-5, 0.1, 10), "target_epsilon"),
    ],
)
def test_invalid_parameters_are_refused_by_name(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epsilon": -0.1, "delta": 0.0}, "epsilon"),
        ({"epsilon": math.nan, "delta": 0.0}, "epsilon"),
        ({"epsilon": 1.0, "delta": 1.0}, "delta"),
        ({"epsilon": 1.0, "delta": 0.0, "unit": "patient"}, "unit"),
        ({"epsilon": 1.0, "delta": 0.0, "mechanism": " "}, "mechanism"),
    ],
)
def test_dp_cost_refuses_invalid_guarantees(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"unit": "record", "mechanism": "gaussian", **kwargs}
    with pytest.raises(ValueError, match=message):
        DpCost(**arguments)  # type: ignore[arg-type]
