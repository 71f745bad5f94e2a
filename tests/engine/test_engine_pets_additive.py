"""Flat additive layouts (URS-2): decoding the sum of hubs' vectors gives the sum of their
answers, for every layout the engine securely aggregates (property-based)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flute.engine.additive import ColumnSumsLayout, LayoutError, NewtonLayout, ScoresLayout, WeightedFitLayout
from flute.evaluate.grid import ScoreGrid
from flute.evaluate.summary import summarise_scores
from flute.learn.logistic import LocalFit, LogisticObjective, local_gradient_descent, newton_sums
from flute.learn.preprocess import column_sums

seeds = st.lists(st.integers(0, 2**32 - 1), min_size=2, max_size=4)


def hub_data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 40))
    features = rng.normal(size=(n, 3))
    features[rng.random((n, 3)) < 0.1] = np.nan
    return features, (rng.random(n) < 0.3).astype(np.int64)


@settings(deadline=None, max_examples=30)
@given(seeds)
def test_column_sums_layout_is_additive(hub_seeds: list[int]) -> None:
    layout, data = ColumnSumsLayout(3), [hub_data(seed) for seed in hub_seeds]
    vectors = [layout.encode(column_sums(x), int(y.sum())) for x, y in data]
    total, positives = layout.decode(np.sum(vectors, axis=0))
    expected = column_sums(np.vstack([x for x, _ in data]))
    assert positives == sum(int(y.sum()) for _, y in data)
    assert (total.n_rows, total.n_incomplete) == (expected.n_rows, expected.n_incomplete)
    np.testing.assert_array_equal(total.n_observed, expected.n_observed)
    np.testing.assert_allclose(total.total, expected.total)


@settings(deadline=None, max_examples=30)
@given(seeds)
def test_newton_and_weighted_fit_layouts_are_additive(hub_seeds: list[int]) -> None:
    weights, objective = np.array([0.1, -0.2, 0.3, 0.05]), LogisticObjective()
    data = [(np.nan_to_num(x), y) for x, y in (hub_data(seed) for seed in hub_seeds)]
    newton = NewtonLayout(4)
    summed = newton.decode(np.sum([newton.encode(newton_sums(weights, x, y, objective)) for x, y in data], axis=0))
    pooled = newton_sums(weights, np.vstack([x for x, _ in data]), np.concatenate([y for _, y in data]), objective)
    np.testing.assert_allclose(summed.gradient, pooled.gradient, atol=1e-9)
    np.testing.assert_allclose(summed.hessian, pooled.hessian, atol=1e-9)
    fits = [local_gradient_descent(weights, x, y, objective, epochs=2, learning_rate=0.5) for x, y in data]
    fit_layout = WeightedFitLayout(4)
    average = fit_layout.decode(np.sum([fit_layout.encode(fit) for fit in fits], axis=0))
    total = sum(fit.weight_total for fit in fits)
    np.testing.assert_allclose(average.weights, sum(fit.weight_total * fit.weights for fit in fits) / total)


def test_score_layout_is_exact_and_lengths_are_checked() -> None:
    grid, rng = ScoreGrid(n_bins=1000), np.random.default_rng(3)
    parts = [summarise_scores((rng.random(50) < 0.4).astype(np.int64), rng.random(50), grid) for _ in range(3)]
    layout = ScoresLayout(grid)
    assert layout.decode(np.sum([layout.encode(p) for p in parts], axis=0)).equals(parts[0] + parts[1] + parts[2])
    with pytest.raises(LayoutError, match="expected a vector of 4000"):
        layout.decode(np.zeros(10))
    with pytest.raises(LayoutError):
        WeightedFitLayout(4).decode(LocalFit(np.zeros(3), 1.0, 0.0).weights)
