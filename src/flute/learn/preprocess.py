"""Federated preprocessing: log-transform, category indicators, mean imputation and
standardisation whose parameters come from additive per-column sums, never from pooled rows.

Per-variable transforms are declared in the study spec and fixed by public information only (the
IG's category codes, the natural log), so every hub applies them locally and identically with no
aggregate exchanged: they cost no privacy. A categorical variable becomes one indicator input per
IG code except the first (the reference level); a missing value leaves all its indicators
missing, so mean imputation gives them the cohort's level frequencies (its contribution to a
linear model is then the average one). A logged variable must be positive: a value <= 0 is refused
(no silent -inf), a missing one stays missing until imputation.

Each hub reports `ColumnSums` over its rows (counts, sums and sums of squares of the observed
values); the coordinator adds them and derives global means and standard deviations that every
hub then applies identically (URS-1, URS-12: only these few aggregates leave a hub). The result
equals what pooling the rows would give, up to floating-point summation order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from flute.cohort.variables import VARIABLES_BY_NAME


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


CategoryLevels = Mapping[str, Sequence[float]]
"""Per categorical variable its levels, the first being the reference level (no indicator)."""


def category_levels(names: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """The IG-fixed levels of categorical study variables (e.g. PI-RADS 1..5): public, so
    expanding them releases nothing about any hub's rows."""
    levels = {}
    for name in names:
        codes = VARIABLES_BY_NAME[name].codes if name in VARIABLES_BY_NAME else ()
        if len(codes) < 2:
            raise PreprocessingError(f"{name!r} has no IG-fixed category codes, so it cannot be expanded into category indicators")
        levels[name] = tuple(float(code) for code in codes)
    return levels


def indicator_name(variable: str, level: float) -> str:
    """The model-input name of one category indicator, e.g. 'pirads=4'."""
    return f"{variable}={level:g}"


def design_columns(columns: Sequence[str], categories: CategoryLevels) -> tuple[str, ...]:
    """Model-input names: each variable as itself, or one indicator per non-reference level."""
    names: list[str] = []
    for name in columns:
        if name in categories:
            names.extend(indicator_name(name, level) for level in categories[name][1:])
        else:
            names.append(name)
    return tuple(names)


def design_matrix(features: np.ndarray, columns: Sequence[str], log_columns: Sequence[str], categories: CategoryLevels) -> np.ndarray:
    """Model inputs before imputation and scaling (NaN = missing), in `design_columns` order:
    logs of `log_columns`, indicators of `categories` (a value outside the variable's levels is
    refused, not silently counted as the reference level)."""
    logged = log_transform(features, columns, log_columns)
    stray = [name for name in categories if name not in columns]
    if stray:
        raise PreprocessingError(f"category variables {stray} are not among the study columns {list(columns)}")
    parts = []
    for index, name in enumerate(columns):
        values = logged[:, index]
        if name not in categories:
            parts.append(values[:, None])
            continue
        levels = np.asarray(categories[name], dtype=np.float64)
        observed = ~np.isnan(values)
        unknown = np.setdiff1d(np.unique(values[observed]), levels)
        if unknown.size:
            raise PreprocessingError(
                f"column {name!r} has value(s) {[f'{v:g}' for v in unknown]} outside its category levels {[f'{v:g}' for v in levels]}; correct the data"
            )
        indicators = (values[:, None] == levels[None, 1:]).astype(np.float64)
        indicators[~observed] = np.nan
        parts.append(indicators)
    return np.hstack(parts) if parts else np.empty((features.shape[0], 0))


def column_sums(features: np.ndarray) -> ColumnSums:
    """The hub-side step: sums over this hub's rows (features already in `design_matrix` form)."""
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
    columns, expand the categorical ones into indicators, replace missing values by the global
    mean, then centre and scale. `columns` are the raw study variables; `means` and `scales` run
    over the model inputs (`inputs`)."""

    columns: tuple[str, ...]
    log_columns: tuple[str, ...]
    means: np.ndarray
    scales: np.ndarray
    categories: tuple[str, ...] = ()

    @property
    def levels(self) -> dict[str, tuple[float, ...]]:
        return category_levels(self.categories)

    @property
    def inputs(self) -> tuple[str, ...]:
        """Model-input names, one per mean and scale."""
        return design_columns(self.columns, self.levels)

    @classmethod
    def from_sums(
        cls,
        columns: Sequence[str],
        log_columns: Sequence[str],
        sums: ColumnSums,
        *,
        standardise: bool = True,
        categories: Sequence[str] = (),
        unscaled: Sequence[str] = (),
    ) -> Standardiser:
        """The coordinator-side step. Scales are sample standard deviations (ddof=1); a column with
        no variance cannot be standardised and is refused with its name. `unscaled` inputs (0/1
        hub-intercept columns) keep their raw values (mean 0, scale 1): all-zero then means "no
        listed hub", and such a column may be constant (a hub left out of training)."""
        inputs = design_columns(columns, category_levels(categories))
        if len(inputs) != sums.total.shape[0]:
            raise PreprocessingError(f"column sums cover {sums.total.shape[0]} inputs but the study has {len(inputs)}: {list(inputs)}")
        empty = [name for name, count in zip(inputs, sums.n_observed) if count == 0]
        if empty:
            raise PreprocessingError(f"columns {empty} have no observed value at any participating hub; drop them from the cohort")
        keep = np.array([name in unscaled for name in inputs], dtype=bool)
        means = np.where(keep, 0.0, sums.total / sums.n_observed)
        if not standardise:
            return cls(tuple(columns), tuple(log_columns), means, np.ones_like(means), tuple(categories))
        # Sum of squared deviations from the global mean: sum x^2 - n * mean^2.
        deviations = np.maximum(sums.total_squares - sums.n_observed * means * means, 0.0)
        variances = np.where(sums.n_observed > 1, deviations / np.maximum(sums.n_observed - 1, 1), 0.0)
        scales = np.where(keep, 1.0, np.sqrt(variances))
        constant = [name for name, scale in zip(inputs, scales) if not scale > 0]
        if constant:
            raise PreprocessingError(f"columns {constant} are constant across the participating hubs and cannot be standardised")
        return cls(tuple(columns), tuple(log_columns), means, scales, tuple(categories))

    def transform(self, features: np.ndarray) -> np.ndarray:
        """Model inputs from raw features (NaN = missing): identical arithmetic at every hub."""
        logged = design_matrix(features, self.columns, self.log_columns, self.levels)
        imputed = np.where(np.isnan(logged), self.means, logged)
        return (imputed - self.means) / self.scales
