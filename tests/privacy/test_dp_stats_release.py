"""Descriptive statistics (flute.privacy.dp_stats): exact sums match numpy, OpenDP releases are
within their expected error and carry the right cost, small cells are suppressed
(F-PIL-16/18, NF-PIL-5, F-PIL-11)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flute.engine.stats_variables import statistics_query, variable_query
from flute.privacy.dp_stats import (
    COMPONENTS,
    QUANTILE_GRID_BINS,
    StatisticsQueryError,
    StatisticsVector,
    estimates,
    exact_statistics,
    plan_dp_statistics,
    suppress_small_cells,
)

RNG = np.random.default_rng(20261122)
N = 3000
COLUMNS = {
    "psa": np.where(RNG.random(N) < 0.05, np.nan, RNG.lognormal(1.8, 0.6, N)),
    "pirads": RNG.integers(1, 6, N).astype(np.float64),
    "ageAtBiopsy": RNG.normal(66.0, 7.0, N),
}


def _clipped(name: str) -> np.ndarray:
    query = variable_query(name)
    values = COLUMNS[name]
    return np.clip(values[~np.isnan(values)], query.lower, query.upper)


def test_exact_statistics_match_numpy() -> None:
    query = statistics_query(["psa", "ageAtBiopsy"], "variance")
    psa, age = estimates(exact_statistics(query, COLUMNS))
    assert psa.n == _clipped("psa").size
    assert psa.mean == pytest.approx(_clipped("psa").mean(), rel=1e-12)
    assert psa.variance == pytest.approx(_clipped("psa").var(ddof=1), rel=1e-9)
    assert age.variance == pytest.approx(_clipped("ageAtBiopsy").var(ddof=1), rel=1e-9)


def test_exact_histogram_and_quantiles() -> None:
    (pirads,) = estimates(exact_statistics(statistics_query(["pirads"], "histogram"), COLUMNS))
    assert [label for label, _ in pirads.histogram] == ["1", "2", "3", "4", "5"]
    assert [count for _, count in pirads.histogram] == [float(np.sum(COLUMNS["pirads"] == code)) for code in range(1, 6)]
    (psa,) = estimates(exact_statistics(statistics_query(["psa"], "quantiles"), COLUMNS))
    width = (variable_query("psa").upper - variable_query("psa").lower) / QUANTILE_GRID_BINS
    for level, value in psa.quantiles:  # grid interpolation is exact to one grid cell
        assert abs(value - np.quantile(_clipped("psa"), level)) <= width


@pytest.mark.parametrize("kind", ["count", "mean", "variance", "histogram", "quantiles"])
def test_plan_cost_is_openDP_pure_dp_within_the_target(kind: str) -> None:
    plan = plan_dp_statistics(statistics_query(["psa", "pirads", "ageAtBiopsy"], kind), 0.9)
    assert 0.9 * (1 - 1e-6) <= plan.cost.epsilon <= 0.9
    assert plan.cost.delta == 0.0 and plan.cost.unit == "record" and plan.cost.mechanism == "opendp-laplace"
    assert plan.cost.details["epsilon_per_component"] == pytest.approx(0.9 / (3 * len(COMPONENTS[kind])), rel=1e-8)


def test_dp_count_error_has_the_discrete_laplace_spread() -> None:
    """n of one variable at epsilon 0.5: discrete Laplace with scale 2, std ~ sqrt(2) * 2."""
    plan = plan_dp_statistics(statistics_query(["pirads"], "count"), 0.5)
    errors = np.array([plan.release(COLUMNS).values[0] - N for _ in range(400)])
    assert np.all(errors == np.round(errors))  # integer noise: no floating-point leak
    assert abs(errors.mean()) < 4 * 2.83 / math.sqrt(400)
    assert 0.8 * 2.83 < errors.std() < 1.2 * 2.83


def test_dp_mean_and_variance_are_close_to_the_truth() -> None:
    plan = plan_dp_statistics(statistics_query(["ageAtBiopsy"], "variance"), 3.0)
    truth = _clipped("ageAtBiopsy")
    means, variances = [], []
    for _ in range(50):
        (age,) = estimates(plan.release(COLUMNS))
        means.append(age.mean)
        variances.append(age.variance)
    # Sum scale (1/epsilon share 1) * 50 / 3000 ~ 0.05 years; sum of squares scale 625 / 3000 ~ 0.2.
    assert abs(np.mean(means) - truth.mean()) < 0.1 and np.std(means) < 0.2
    assert abs(np.mean(variances) - truth.var(ddof=1)) < 1.0


def test_dp_histogram_and_quantiles_are_close_to_the_truth() -> None:
    (pirads,) = estimates(plan_dp_statistics(statistics_query(["pirads"], "histogram"), 1.0).release(COLUMNS))
    for (_, count), code in zip(pirads.histogram, range(1, 6)):
        assert abs(count - np.sum(COLUMNS["pirads"] == code)) < 20  # scale 1: P(|noise| >= 20) ~ 4e-9
    (psa,) = estimates(plan_dp_statistics(statistics_query(["psa"], "quantiles"), 1.0).release(COLUMNS))
    for level, value in psa.quantiles:
        assert abs(value - np.quantile(_clipped("psa"), level)) < 1.5


def test_small_cells_are_zeroed_and_flagged_with_the_sums_of_their_variable() -> None:
    columns = {"psa": np.array([1.0, 2.0, 3.0, np.nan]), "pirads": np.array([3.0] * 12 + [5.0])}
    query = statistics_query(["psa", "pirads"], "variance")
    vector = suppress_small_cells(exact_statistics(query, columns), 10)
    psa, pirads = estimates(vector)
    assert psa.n is None and psa.mean is None and set(psa.suppressed) == {"n", "sum", "sumsq"}
    assert np.all(vector.values[:3] == 0.0)  # never sent raw
    assert pirads.n == 13 and not pirads.suppressed
    (histogram,) = estimates(suppress_small_cells(exact_statistics(statistics_query(["pirads"], "histogram"), columns), 10))
    assert dict(histogram.histogram) == {"1": None, "2": None, "3": 12.0, "4": None, "5": None}


def test_dp_small_cells_keep_their_noisy_values_but_are_flagged() -> None:
    query = statistics_query(["pirads"], "histogram")
    noisy = StatisticsVector(query, np.array([3.4, -1.0, 50.0, 9.0, 12.0]), np.zeros(5, dtype=bool))
    flagged = suppress_small_cells(noisy, 10, withhold=False)
    assert np.array_equal(flagged.values, noisy.values)
    assert flagged.suppressed.tolist() == [True, True, False, True, False]
    assert [count for _, count in estimates(flagged)[0].histogram] == [None, None, 50.0, None, 12.0]


def test_bad_queries_are_refused_with_the_choices() -> None:
    with pytest.raises(StatisticsQueryError, match="unknown study variable 'weight'"):
        statistics_query(["weight"], "mean")
    with pytest.raises(StatisticsQueryError, match="unknown statistic 'median'"):
        statistics_query(["psa"], "median")
    with pytest.raises(StatisticsQueryError, match="epsilon must be"):
        plan_dp_statistics(statistics_query(["psa"], "mean"), 0.0)
    with pytest.raises(StatisticsQueryError, match="lacks variable"):
        exact_statistics(statistics_query(["dre"], "count"), COLUMNS)


@settings(max_examples=40, deadline=None)
@given(
    parts=st.lists(st.lists(st.floats(0, 120, allow_nan=False), min_size=0, max_size=30), min_size=1, max_size=4),
    kind=st.sampled_from(["count", "mean", "variance", "histogram", "quantiles"]),
)
def test_sums_of_hubs_equal_the_sums_of_the_pooled_rows(parts: list[list[float]], kind: str) -> None:
    """Additivity, the property every pooled path (plain, DP, HE) rests on."""
    query = statistics_query(["psa"], kind)
    total = exact_statistics(query, {"psa": np.array(parts[0])})
    for part in parts[1:]:
        total = total + exact_statistics(query, {"psa": np.array(part)})
    pooled = exact_statistics(query, {"psa": np.array([v for part in parts for v in part])})
    np.testing.assert_allclose(total.values, pooled.values, rtol=1e-9, atol=1e-6)
