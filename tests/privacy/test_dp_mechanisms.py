"""Noise, clipping and distributed noise (URS-6/7/8, NF-PIL-5, F-PIL-11)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

from flute.privacy.dp.accounting import gaussian_mechanism_epsilon
from flute.privacy.dp.mechanisms import (
    NoisePlan,
    NoiseSource,
    clip_rows_l2,
    clip_values,
    gaussian_noise_share,
    release_bounded_sum,
    release_clipped_vector_sum,
)

SAMPLES = 200_000


def test_secure_sources_never_repeat_and_test_sources_reproduce() -> None:
    first, second = NoiseSource.secure().standard_normal((64,)), NoiseSource.secure().standard_normal((64,))
    assert not np.array_equal(first, second)
    assert np.array_equal(
        NoiseSource.deterministic_for_tests(7).standard_normal((64,)),
        NoiseSource.deterministic_for_tests(7).standard_normal((64,)),
    )
    source = NoiseSource.secure()
    assert not np.array_equal(source.standard_normal((64,)), source.standard_normal((64,)))


def test_standard_normal_is_standard_normal() -> None:
    samples = NoiseSource.deterministic_for_tests(1).standard_normal((SAMPLES,))
    assert abs(samples.mean()) < 0.01 and abs(samples.var() - 1) < 0.02
    assert stats.kstest(samples, "norm").pvalue > 1e-3


def test_odd_shapes_are_filled() -> None:
    samples = NoiseSource.deterministic_for_tests(2).standard_normal((3, 5))
    assert samples.shape == (3, 5) and np.all(np.isfinite(samples))


def _shares(plan: NoisePlan, sigma: float, seed: int) -> list[np.ndarray]:
    return [gaussian_noise_share((SAMPLES,), sigma, plan, NoiseSource.deterministic_for_tests(seed + hub)) for hub in range(plan.contributors)]


def test_distributed_shares_sum_to_the_target_variance() -> None:
    sigma = 3.0
    shares = _shares(NoisePlan.distributed(3), sigma, seed=10)
    assert all(abs(share.var() - sigma**2 / 3) < 0.03 * sigma**2 / 3 for share in shares)
    assert abs(np.sum(shares, axis=0).var() - sigma**2) < 0.03 * sigma**2


def test_conservative_plan_keeps_the_target_variance_after_a_dropout() -> None:
    sigma = 2.0
    plan = NoisePlan.distributed(4, tolerated_dropouts=1)
    survivors = _shares(plan, sigma, seed=20)[:3]
    assert np.sum(survivors, axis=0).var() > 0.97 * sigma**2


def test_local_plan_gives_every_hub_the_full_noise() -> None:
    share = _shares(NoisePlan.local(3), 1.5, seed=30)[0]
    assert abs(share.var() - 1.5**2) < 0.03 * 1.5**2


def test_plan_that_leaves_no_honest_share_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one honest"):
        NoisePlan.distributed(3, tolerated_colluders=2, tolerated_dropouts=1)


@settings(max_examples=60, deadline=None)
@given(
    vectors=hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=8), elements=st.floats(-1e6, 1e6)),
    max_norm=st.floats(0.01, 100.0),
)
def test_clipping_bounds_every_row_and_keeps_short_rows(vectors: np.ndarray, max_norm: float) -> None:
    clipped = clip_rows_l2(vectors, max_norm)
    norms, original = np.linalg.norm(clipped, axis=1), np.linalg.norm(vectors, axis=1)
    assert np.all(norms <= max_norm * (1 + 1e-9))
    short = original <= max_norm
    assert np.array_equal(clipped[short], vectors[short])


def test_clipping_refuses_missing_values() -> None:
    with pytest.raises(ValueError, match="NaN"):
        clip_values(np.array([1.0, np.nan]), 0.0, 10.0)
    with pytest.raises(ValueError, match="NaN"):
        clip_rows_l2(np.array([[1.0, np.nan]]), 1.0)
    with pytest.raises(ValueError, match="lower < upper"):
        clip_values(np.array([1.0]), 5.0, 5.0)


def test_bounded_sum_release_is_unbiased_with_the_stated_noise_and_cost() -> None:
    psa = np.array([4.2, 7.9, 55.0, 3.1, 12.5])  # 55 is clamped to 20
    noise = NoiseSource.deterministic_for_tests(40)
    releases = [release_bounded_sum(psa, 0.0, 20.0, 2.0, 1e-5, noise=noise) for _ in range(2000)]
    values = np.array([release.value[0] for release in releases])
    assert abs(values.mean() - 47.7) < 4 * 40.0 / np.sqrt(len(values))
    assert abs(values.std() - 40.0) < 0.05 * 40.0
    cost = releases[0].cost
    assert cost.epsilon == gaussian_mechanism_epsilon(20.0, 40.0, 1, 1e-5)
    assert cost.unit == "record" and cost.delta == 1e-5 and cost.details["sensitivity"] == 20.0


def test_vector_sum_release_clips_each_record_and_states_the_plan() -> None:
    histogram_rows = np.eye(3)[[0, 1, 1, 2, 2, 2]]
    release = release_clipped_vector_sum(
        histogram_rows, 1.0, 5.0, 1e-5, plan=NoisePlan.distributed(3), unit="record", noise=NoiseSource.deterministic_for_tests(50)
    )
    assert release.value.shape == (3,)
    assert np.all(np.abs(release.value - [1, 2, 3]) < 6 * 5.0 / np.sqrt(3))
    assert release.cost.epsilon == gaussian_mechanism_epsilon(1.0, 5.0, 1, 1e-5)
    assert "3 contributor(s)" in str(release.cost.details["noise_plan"])
