"""Privacy accounting for the Gaussian mechanism, full-batch and Poisson-subsampled (DP-SGD).

Backed by dp-accounting (URS-6/7/8, NF-HUF-2):
- The privacy-loss-distribution (PLD) accountant is the reference: its pessimistic estimate is a
  valid upper bound and much tighter than RDP, so more training fits in the same budget.
- The RDP accountant is computed alongside as a cross-check: it is a looser upper bound, so a
  PLD epsilon above the RDP one would signal a bug.
- Subsampling amplification assumes POISSON sampling: each record joins each step's batch
  independently with probability `sampling_rate`. Fixed-size shuffled batches do not get this
  guarantee; a trainer that claims a DP-SGD cost must sample that way.
- Neighbouring datasets differ by adding or removing one record (dp-accounting's default).

Several full-batch Gaussian releases with the same sensitivity and sigma compose exactly into one
Gaussian release with sigma / sqrt(count) (Gaussian DP), whose epsilon is computed analytically.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from flute.privacy.dp.cost import DpCost, PrivacyUnit

if TYPE_CHECKING:
    from dp_accounting import DpEvent

#: Relative precision of noise calibration: the returned multiplier is at most this much larger
#: than the smallest one that meets the target (never smaller).
CALIBRATION_RELATIVE_TOLERANCE = 1e-3


def gaussian_sgd_epsilon(noise_multiplier: float, sampling_rate: float, steps: int, delta: float) -> float:
    """Epsilon (PLD) of `steps` Poisson-subsampled Gaussian steps with the given noise multiplier
    (noise std divided by the per-record clipping norm)."""
    from dp_accounting import pld

    accountant = pld.PLDAccountant()
    accountant.compose(_sgd_event(noise_multiplier, sampling_rate, steps, delta))
    return float(accountant.get_epsilon(delta))


def gaussian_sgd_epsilon_rdp(noise_multiplier: float, sampling_rate: float, steps: int, delta: float) -> float:
    """The same quantity with the RDP accountant: an upper bound >= the PLD epsilon."""
    from dp_accounting import rdp

    accountant = rdp.RdpAccountant()
    accountant.compose(_sgd_event(noise_multiplier, sampling_rate, steps, delta))
    return float(accountant.get_epsilon(delta))


def gaussian_sgd_cost(
    noise_multiplier: float, sampling_rate: float, steps: int, delta: float, unit: PrivacyUnit = "record"
) -> DpCost:
    """The DpCost of a DP-SGD run (PLD epsilon), with the RDP epsilon kept as a cross-check."""
    return DpCost(
        epsilon=gaussian_sgd_epsilon(noise_multiplier, sampling_rate, steps, delta),
        delta=delta,
        unit=unit,
        mechanism="poisson-subsampled-gaussian",
        details={
            "noise_multiplier": noise_multiplier,
            "sampling_rate": sampling_rate,
            "steps": steps,
            "accountant": "pld",
            "epsilon_rdp": gaussian_sgd_epsilon_rdp(noise_multiplier, sampling_rate, steps, delta),
        },
    )


def full_batch_and_sgd_epsilon(
    full_batch_multiplier: float, full_batch_count: int, sgd_multiplier: float, sampling_rate: float, sgd_steps: int, delta: float, *, accountant: str = "pld"
) -> float:
    """Epsilon of `full_batch_count` Gaussian releases at one multiplier composed with `sgd_steps`
    Poisson-subsampled Gaussian steps at another (a DP-SGD study with its census and
    preprocessing releases); accountant 'pld' (the reference) or 'rdp' (the cross-check)."""
    import dp_accounting
    from dp_accounting import pld, rdp

    _check_positive("full_batch_multiplier", full_batch_multiplier)
    _check_count("full_batch_count", full_batch_count)
    full_batch = dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(full_batch_multiplier), full_batch_count)
    event = dp_accounting.ComposedDpEvent([full_batch, _sgd_event(sgd_multiplier, sampling_rate, sgd_steps, delta)])
    tracker = pld.PLDAccountant() if accountant == "pld" else rdp.RdpAccountant()
    tracker.compose(event)
    return float(tracker.get_epsilon(delta))


def calibrate_sgd_multiplier_with_full_batch(
    target_epsilon: float, delta: float, full_batch_multiplier: float, full_batch_count: int, sampling_rate: float, sgd_steps: int
) -> float:
    """The smallest DP-SGD noise multiplier (bisection over PLD, conservative) such that the
    SGD steps composed with the given full-batch releases stay within target_epsilon."""
    _check_positive("target_epsilon", target_epsilon)
    return _smallest_multiplier_meeting(
        lambda multiplier: full_batch_and_sgd_epsilon(full_batch_multiplier, full_batch_count, multiplier, sampling_rate, sgd_steps, delta),
        target_epsilon,
    )


def calibrate_noise_multiplier(target_epsilon: float, delta: float, sampling_rate: float, steps: int) -> float:
    """The smallest noise multiplier (within CALIBRATION_RELATIVE_TOLERANCE, never below it)
    whose PLD epsilon for this DP-SGD schedule is <= target_epsilon. Bisection over PLD."""
    _check_positive("target_epsilon", target_epsilon)
    return _smallest_multiplier_meeting(
        lambda multiplier: gaussian_sgd_epsilon(multiplier, sampling_rate, steps, delta), target_epsilon
    )


def gaussian_mechanism_epsilon(sensitivity: float, sigma: float, count: int, delta: float) -> float:
    """Epsilon of `count` full-batch Gaussian releases, each of L2 sensitivity `sensitivity`
    with noise std `sigma` (exact, via the analytic Gaussian mechanism)."""
    from dp_accounting import gaussian_mechanism

    _check_positive("sensitivity", sensitivity)
    _check_positive("sigma", sigma)
    _check_count("count", count)
    _check_delta(delta)
    return float(gaussian_mechanism.get_epsilon_gaussian(sigma / (sensitivity * math.sqrt(count)), delta))


def gaussian_mechanism_cost(
    sensitivity: float, sigma: float, count: int, delta: float, unit: PrivacyUnit = "record"
) -> DpCost:
    return DpCost(
        epsilon=gaussian_mechanism_epsilon(sensitivity, sigma, count, delta),
        delta=delta,
        unit=unit,
        mechanism="gaussian",
        details={"sensitivity": sensitivity, "sigma": sigma, "count": count},
    )


def calibrate_gaussian_sigma(target_epsilon: float, delta: float, sensitivity: float, count: int) -> float:
    """The noise std that makes `count` Gaussian releases of this sensitivity exactly
    (target_epsilon, delta)-DP (analytic, rounded up so the target is never exceeded)."""
    from dp_accounting import gaussian_mechanism

    _check_positive("target_epsilon", target_epsilon)
    _check_positive("sensitivity", sensitivity)
    _check_count("count", count)
    _check_delta(delta)
    unit_sigma = float(gaussian_mechanism.get_sigma_gaussian(target_epsilon, delta))
    return math.nextafter(unit_sigma * sensitivity * math.sqrt(count), math.inf)


def _smallest_multiplier_meeting(epsilon_of: Callable[[float], float], target_epsilon: float) -> float:
    """Bisection for a decreasing epsilon(multiplier): returns the upper end of the final
    bracket, which always meets the target (conservative)."""
    high = 1.0
    while epsilon_of(high) > target_epsilon:
        high *= 2
        if high > 1e6:
            raise ValueError(f"no noise multiplier up to 1e6 reaches epsilon {target_epsilon}; is the target too small?")
    low = high / 2
    while epsilon_of(low) <= target_epsilon:
        high, low = low, low / 2
        if low < 1e-3:
            return high
    while (high - low) > CALIBRATION_RELATIVE_TOLERANCE * high:
        middle = (low + high) / 2
        if epsilon_of(middle) <= target_epsilon:
            high = middle
        else:
            low = middle
    return high


def _sgd_event(noise_multiplier: float, sampling_rate: float, steps: int, delta: float) -> DpEvent:
    import dp_accounting

    _check_positive("noise_multiplier", noise_multiplier)
    if not 0 < sampling_rate <= 1:
        raise ValueError(f"sampling_rate must lie in (0, 1] (the Poisson inclusion probability per step), got {sampling_rate!r}")
    _check_count("steps", steps)
    _check_delta(delta)
    step = dp_accounting.PoissonSampledDpEvent(sampling_rate, dp_accounting.GaussianDpEvent(noise_multiplier))
    return dp_accounting.SelfComposedDpEvent(step, steps)


def _check_positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _check_delta(delta: float) -> None:
    if not (math.isfinite(delta) and 0 < delta < 1):
        raise ValueError(f"delta must lie in (0, 1) (typically well below 1/number of records), got {delta!r}")
