"""Shared quantile bins from additive fine-grid counts (F-HUF-4): federated counts are the pooled
counts, and every cut lies within one grid cell of the pooled quantile it stands for."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from flute.learn.binning import FineGrid, fine_histograms, quantile_bins

from .learn_inputs import pooled, three_hubs

GRID = FineGrid()


def test_summed_hub_counts_equal_the_pooled_counts() -> None:
    hubs = three_hubs()
    summed = sum(fine_histograms(x, GRID) for x, _ in hubs)
    np.testing.assert_array_equal(summed, fine_histograms(pooled(hubs)[0], GRID))


def test_cuts_are_pooled_quantiles_within_one_grid_cell() -> None:
    hubs = three_hubs(missing=0.1)
    bins = quantile_bins(sum(fine_histograms(x, GRID) for x, _ in hubs), GRID, max_bins=16)
    values = pooled(hubs)[0][:, 0]
    observed = values[~np.isnan(values)]
    expected = np.quantile(observed, np.arange(1, 16) / 16, method="inverted_cdf")
    assert bins.cuts[0].shape == expected.shape
    assert np.all(np.abs(bins.cuts[0] - expected) <= GRID.width + 1e-12)


def test_discrete_feature_gets_one_cut_between_each_pair_of_values() -> None:
    hubs = three_hubs()
    bins = quantile_bins(sum(fine_histograms(x, GRID) for x, _ in hubs), GRID, max_bins=32)
    levels = np.array([-1.5, -0.7, 0.0, 0.8, 1.6])
    assert bins.cuts[2].shape == (4,)
    assert np.all((bins.cuts[2] >= levels[:-1]) & (bins.cuts[2] < levels[1:]))


def test_bin_index_agrees_with_the_threshold_test_and_missing_gets_its_own_bin() -> None:
    hubs = three_hubs(missing=0.2)
    x = pooled(hubs)[0]
    bins = quantile_bins(fine_histograms(x, GRID), GRID, max_bins=8)
    binned = bins.bin_inputs(x)
    for feature, cuts in enumerate(bins.cuts):
        observed = ~np.isnan(x[:, feature])
        for t, cut in enumerate(cuts):
            np.testing.assert_array_equal(binned[observed, feature] <= t, x[observed, feature] <= cut)
        assert np.all(binned[~observed, feature] == bins.missing_bin)


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.floats(-10, 10, allow_nan=False), min_size=5, max_size=200),
    split=st.integers(0, 200),
    max_bins=st.integers(2, 64),
)
def test_cuts_do_not_depend_on_how_rows_are_split_between_hubs(values: list[float], split: int, max_bins: int) -> None:
    x = np.array(values)[:, None]
    first, second = x[: split % len(values)], x[split % len(values) :]
    federated = quantile_bins(fine_histograms(first, GRID) + fine_histograms(second, GRID), GRID, max_bins)
    central = quantile_bins(fine_histograms(x, GRID), GRID, max_bins)
    np.testing.assert_array_equal(federated.cuts[0], central.cuts[0])
    cuts = central.cuts[0]
    assert np.all(np.diff(cuts) > 0) and cuts.shape[0] <= max_bins - 1
    assert np.all(cuts < x.max())  # no cut above every value: it would split nothing off
