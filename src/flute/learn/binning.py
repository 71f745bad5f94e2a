"""Shared quantile bins for histogram-based trees, computed from additive histograms (F-HUF-4).

Trees split features at bin boundaries that every hub must share. Pooled quantiles would need the
rows, so each hub releases only counts of its (standardised) model inputs on a fine FIXED grid
(`FineGrid`, the same at every hub, known before any data is seen). The coordinator adds the
counts and reads the global quantile cut points off the summed histogram: every cut lies within one
grid cell of the pooled quantile it stands for, and adding hubs' counts gives exactly the counts of
their pooled rows, so federated and pooled training see the same bins.

Bins of a feature with cuts c_0 < ... < c_{k-1}: bin(x) = number of cuts strictly below x, so
bin(x) <= t exactly when x <= c_t; a missing value (NaN) falls in the extra bin `n_bins`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FineGrid:
    """Equal-width cells over [lower, upper] on the standardised scale, plus one overflow cell on
    each side. Model inputs are standardised (global mean 0, sd 1), so +-8 sd holds all but
    extreme outliers, which merely land in the end cells."""

    lower: float = -8.0
    upper: float = 8.0
    n_cells: int = 2048

    def __post_init__(self) -> None:
        if not (self.lower < self.upper and self.n_cells >= 2):
            raise ValueError(f"FineGrid needs lower < upper and n_cells >= 2, got {self}")

    @property
    def n_slots(self) -> int:
        """Cells including the two overflow cells."""
        return self.n_cells + 2

    @property
    def width(self) -> float:
        return (self.upper - self.lower) / self.n_cells

    def upper_edges(self) -> np.ndarray:
        """The upper edge of every slot (the last, open-ended slot has +inf)."""
        inner = self.lower + self.width * np.arange(1, self.n_cells + 1)
        return np.concatenate([[self.lower], inner[:-1], [self.upper], [np.inf]])

    def slot(self, values: np.ndarray) -> np.ndarray:
        """Slot of each observed value: 0 below `lower`, n_cells + 1 at or above `upper`."""
        cells = np.floor((values - self.lower) / self.width)
        return (np.clip(cells, -1, self.n_cells) + 1).astype(np.int64)


def fine_histograms(inputs: np.ndarray, grid: FineGrid) -> np.ndarray:
    """Hub-side: per feature, the count of observed values in each grid slot (n_features, n_slots).
    Additive over hubs; missing values are not counted (they get their own bin later)."""
    n_features = inputs.shape[1]
    counts = np.zeros((n_features, grid.n_slots), dtype=np.int64)
    for feature in range(n_features):
        column = inputs[:, feature]
        observed = column[~np.isnan(column)]
        counts[feature] = np.bincount(grid.slot(observed), minlength=grid.n_slots)
    return counts


@dataclass(frozen=True)
class QuantileBins:
    """Global cut points per feature (strictly increasing, possibly fewer than `max_bins - 1`
    where values are discrete) and the bin count every histogram uses."""

    cuts: tuple[np.ndarray, ...]
    max_bins: int

    @property
    def n_features(self) -> int:
        return len(self.cuts)

    @property
    def missing_bin(self) -> int:
        """Index of the bin holding missing values (after the `max_bins` regular bins)."""
        return self.max_bins

    def bin_inputs(self, inputs: np.ndarray) -> np.ndarray:
        """Bin index of every value (n_rows, n_features); NaN -> `missing_bin`."""
        if inputs.shape[1] != self.n_features:
            raise ValueError(f"inputs have {inputs.shape[1]} columns, the bins were computed for {self.n_features}")
        binned = np.empty(inputs.shape, dtype=np.int64)
        for feature, cuts in enumerate(self.cuts):
            column = inputs[:, feature]
            binned[:, feature] = np.where(np.isnan(column), self.missing_bin, np.searchsorted(cuts, column, side="left"))
        return binned


def quantile_bins(histograms: np.ndarray, grid: FineGrid, max_bins: int) -> QuantileBins:
    """Coordinator-side: cut points at the quantiles k / max_bins (k = 1 .. max_bins - 1) of the
    summed fine histograms. Each cut is the upper edge of the cell holding that quantile; cuts that
    coincide (discrete features) are merged, and a cut above every observed value is dropped since
    it would split nothing off."""
    if max_bins < 2:
        raise ValueError(f"max_bins must be at least 2, got {max_bins}")
    edges = grid.upper_edges()
    cuts = []
    for counts in histograms:
        total = int(counts.sum())
        if total == 0:
            cuts.append(np.empty(0))
            continue
        cumulative = np.cumsum(counts)
        targets = np.arange(1, max_bins) * total / max_bins
        slots = np.unique(np.searchsorted(cumulative, targets, side="left"))
        last_occupied = int(np.flatnonzero(counts)[-1])
        slots = slots[slots < last_occupied]
        cuts.append(edges[slots])
    return QuantileBins(tuple(cuts), max_bins)


def standard_normal_bins(n_features: int, max_bins: int) -> QuantileBins:
    """Data-free cuts at the quantiles k / max_bins of N(0, 1) for every feature. Model inputs are
    standardised, so these are the quantile bins of normally distributed inputs; a DP study uses
    them instead of `quantile_bins` of released fine-grid counts: they cost no privacy, whereas
    thousands of noisy fine-grid slots would blur every quantile."""
    from statistics import NormalDist

    if max_bins < 2:
        raise ValueError(f"max_bins must be at least 2, got {max_bins}")
    cuts = np.array([NormalDist().inv_cdf(k / max_bins) for k in range(1, max_bins)])
    return QuantileBins(tuple(cuts.copy() for _ in range(n_features)), max_bins)
