"""Federated preprocessing: log-transform, mean imputation and standardisation whose parameters
come from additive per-column sums, never from pooled rows.

Each hub reports `ColumnSums` over its rows (counts, sums and sums of squares of the observed
values); the coordinator adds them and derives global means and standard deviations that every
hub then applies identically (URS-1, URS-12: only these few aggregates leave a hub). The result
equals what pooling the rows would give, up to floating-point summation order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


class PreprocessingError(ValueError):
    """Data that the requested preprocessing cannot handle; the message names column and fix."""


@dataclass(frozen=True)
class ColumnSums:
    """Additive per-column summaries of observed (non-NaN) values, and the number of rows missing
    at least one value: adding two hubs' sums gives the sums of their pooled rows."""

    n_rows: int
    n_observed: np.ndarray
    total: np.ndarray
    total_squares: np.ndarray
    n_incomplete: int = 0

    def __add__(self, other: ColumnSums) -> ColumnSums:
        if self.total.shape != other.total.shape:
            raise ValueError(f"cannot add column sums over {self.total.shape[0]} and {other.total.shape[0]} columns")
        return ColumnSums(
            n_rows=self.n_rows + other.n_rows,
            n_observed=self.n_observed + other.n_observed,
            total=self.total + other.total,
            total_squares=self.total_squares + other.total_squares,
            n_incomplete=self.n_incomplete + other.n_incomplete,
        )

    @property
    def n_missing(self) -> np.ndarray:
        return self.n_rows - self.n_observed


def log_transform(features: np.ndarray, columns: Sequence[str], log_columns: Sequence[str]) -> np.ndarray:
    """Natural log of the named columns (NaN stays NaN). Refuses non-positive values rather than
    turning them into -inf or silently into missing values."""
    out = np.array(features, dtype=np.float64, copy=True)
    for name in log_columns:
        if name not in columns:
            raise PreprocessingError(f"log-transform column {name!r} is not among the study columns {list(columns)}")
        index = list(columns).index(name)
        values = out[:, index]
        bad = np.count_nonzero(values[~np.isnan(values)] <= 0)
        if bad:
            raise PreprocessingError(
                f"column {name!r} has {bad} value(s) <= 0 that have no logarithm; "
                "remove it from preprocessing.log_transform or correct the data"
            )
        out[:, index] = np.log(values)
    return out


def column_sums(features: np.ndarray) -> ColumnSums:
    """The hub-side step: sums over this hub's rows (features already log-transformed)."""
    observed = ~np.isnan(features)
    filled = np.where(observed, features, 0.0)
    return ColumnSums(
        n_rows=int(features.shape[0]),
        n_observed=observed.sum(axis=0).astype(np.int64),
        total=filled.sum(axis=0),
        total_squares=(filled * filled).sum(axis=0),
        n_incomplete=int((~observed).any(axis=1).sum()),
    )


@dataclass(frozen=True)
class Standardiser:
    """Global preprocessing parameters, applied identically at every hub: log-transform the named
    columns, replace missing values by the global mean, then centre and scale."""

    columns: tuple[str, ...]
    log_columns: tuple[str, ...]
    means: np.ndarray
    scales: np.ndarray

    @classmethod
    def from_sums(
        cls, columns: Sequence[str], log_columns: Sequence[str], sums: ColumnSums, *, standardise: bool = True
    ) -> Standardiser:
        """The coordinator-side step. Scales are sample standard deviations (ddof=1); a column with
        no variance cannot be standardised and is refused with its name."""
        empty = [name for name, count in zip(columns, sums.n_observed) if count == 0]
        if empty:
            raise PreprocessingError(f"columns {empty} have no observed value at any participating hub; drop them from the cohort")
        means = sums.total / sums.n_observed
        if not standardise:
            return cls(tuple(columns), tuple(log_columns), means, np.ones_like(means))
        # Sum of squared deviations from the global mean: sum x^2 - n * mean^2.
        deviations = np.maximum(sums.total_squares - sums.n_observed * means * means, 0.0)
        variances = np.where(sums.n_observed > 1, deviations / np.maximum(sums.n_observed - 1, 1), 0.0)
        scales = np.sqrt(variances)
        constant = [name for name, scale in zip(columns, scales) if not scale > 0]
        if constant:
            raise PreprocessingError(f"columns {constant} are constant across the participating hubs and cannot be standardised")
        return cls(tuple(columns), tuple(log_columns), means, scales)

    def transform(self, features: np.ndarray) -> np.ndarray:
        """Model inputs from raw features (NaN = missing): identical arithmetic at every hub."""
        logged = log_transform(features, self.columns, self.log_columns)
        imputed = np.where(np.isnan(logged), self.means, logged)
        return (imputed - self.means) / self.scales
