"""Descriptive statistics of study variables for researchers, exact or differentially private
(F-PIL-16/18, NF-PIL-5, F-PIL-11).

A `StatisticsQuery` names variables (each with data-independent clipping bounds and histogram
bins; the study variables' defaults are in `flute.engine.stats_variables`) and one kind of
statistic. A hub's answer is a flat vector of additive SUMS (`StatisticsVector`): per variable the observed count n, the sum and the sum of squares of
values centred on the midpoint of their bounds, histogram counts, or counts on a fine grid for
quantiles. Sums from several hubs add up, so the pooled statistics of the hubs are computed from
the vector sum - in the clear, from DP releases, or under homomorphic encryption (`flute.privacy.he`)
- and turned into estimates (`estimates`) only at the end.

Differential privacy (OpenDP 0.16, MaxDivergence = pure epsilon-DP, delta = 0):
- unit of privacy: one patient record (add/remove; OpenDP's symmetric distance d_in = 1);
- every component of every variable is one OpenDP measurement: drop missing values, clamp to
  the bounds, then a count (discrete Laplace), a float sum (OpenDP's Laplace with its own
  float-rounding allowance) or a binned count vector (discrete Laplace, L1 sensitivity 1);
- the epsilon of the query is split evenly over variables x components; each noise scale is the
  smallest OpenDP's `binary_search_param` finds whose `map(1)` fits the share, and a variable's
  components are composed by OpenDP (`make_composition`, basic composition);
- variables are columns of the SAME patients, so their costs add up (basic composition, the
  rule the hub's ledger enforces too). The resulting DpCost is (sum of OpenDP's maps, 0).
The cost is known from the plan, before any data is touched: the hub reserves it first.

Pooled statistics from DP releases: each hub releases its own noisy sums (local DP per hub), and
the coordinator adds them up. Adding is post-processing, so every hub's records keep that hub's
(epsilon, 0)-DP guarantee against everyone, the coordinator included; the price is that the
pooled sum carries the noise of every hub (variance grows with the number of hubs).

Small cells (F-PIL-11): a hub's policy sets a minimum cell size; exact counts below it (and the
sums of a variable whose count is below it) are suppressed - zeroed and flagged, never sent raw;
DP counts below it are flagged (hidden from display) but kept for pooling, being noisy already.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np

from flute.privacy.dp.cost import DpCost

StatisticKind = Literal["count", "mean", "variance", "histogram", "quantiles"]
STATISTIC_KINDS: tuple[str, ...] = get_args(StatisticKind)
Component = Literal["n", "sum", "sumsq", "bins", "grid"]

#: What each kind of statistic needs from every hub, per variable.
COMPONENTS: Mapping[str, tuple[Component, ...]] = {
    "count": ("n",),
    "mean": ("n", "sum"),
    "variance": ("n", "sum", "sumsq"),
    "histogram": ("bins",),
    "quantiles": ("grid",),
}
#: Quantiles come from counts on a fine grid of this many equal bins between the bounds.
QUANTILE_GRID_BINS = 100
QUANTILE_LEVELS: tuple[float, ...] = (0.25, 0.5, 0.75)


class StatisticsQueryError(ValueError):
    """A statistics query that cannot be answered as asked; the message says how to fix it."""


@dataclass(frozen=True)
class VariableQuery:
    """One variable: clipping bounds, histogram edges (left-inclusive, between the bins) and a
    label per bin."""

    name: str
    lower: float
    upper: float
    edges: tuple[float, ...]
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lower) and math.isfinite(self.upper) and self.lower < self.upper):
            raise StatisticsQueryError(f"{self.name}: bounds need finite lower < upper, got [{self.lower}, {self.upper}]")
        if list(self.edges) != sorted(set(self.edges)) or len(self.labels) != len(self.edges) + 1:
            raise StatisticsQueryError(f"{self.name}: edges must be strictly increasing with one label per bin")

    @property
    def centre(self) -> float:
        """Values are summed relative to the midpoint: the sum of squares then has sensitivity
        ((upper - lower) / 2)^2, four times less than raw squares from a zero lower bound."""
        return (self.lower + self.upper) / 2

    @property
    def half_width(self) -> float:
        return (self.upper - self.lower) / 2

    def grid_edges(self) -> np.ndarray:
        return np.linspace(self.lower, self.upper, QUANTILE_GRID_BINS + 1)


@dataclass(frozen=True)
class StatisticsQuery:
    """Which variables, which statistic."""

    variables: tuple[VariableQuery, ...]
    kind: StatisticKind

    def __post_init__(self) -> None:
        if self.kind not in STATISTIC_KINDS:
            raise StatisticsQueryError(f"unknown statistic {self.kind!r}; choose one of {list(STATISTIC_KINDS)}")
        names = [v.name for v in self.variables]
        if not names or len(set(names)) != len(names):
            raise StatisticsQueryError(f"name each variable once (got {names})")

    def layout(self) -> list[tuple[str, Component, slice]]:
        """Where each (variable, component) lies in the flat statistics vector."""
        slots, offset = [], 0
        for variable in self.variables:
            for component in COMPONENTS[self.kind]:
                length = _length(variable, component)
                slots.append((variable.name, component, slice(offset, offset + length)))
                offset += length
        return slots

    @property
    def size(self) -> int:
        return sum(s.stop - s.start for _, _, s in self.layout())

    def count_mask(self) -> np.ndarray:
        """True where the vector holds a count of patients (an integer when exact)."""
        mask = np.zeros(self.size, dtype=bool)
        for _, component, where in self.layout():
            mask[where] = component in ("n", "bins", "grid")
        return mask


def _length(variable: VariableQuery, component: Component) -> int:
    if component == "bins":
        return len(variable.labels)
    if component == "grid":
        return QUANTILE_GRID_BINS
    return 1


@dataclass(frozen=True)
class StatisticsVector:
    """A hub's (or the pooled) additive statistics, laid out by its query; `suppressed` flags
    entries withheld by a small-cell policy (zeroed, unless a DP release kept its noisy value)."""

    query: StatisticsQuery
    values: np.ndarray
    suppressed: np.ndarray

    def __post_init__(self) -> None:
        if self.values.shape != (self.query.size,) or self.suppressed.shape != (self.query.size,):
            raise StatisticsQueryError(f"statistics vector has shape {self.values.shape}; the query lays out {self.query.size} values")

    def __add__(self, other: StatisticsVector) -> StatisticsVector:
        if other.query != self.query:
            raise StatisticsQueryError("cannot add statistics of different queries")
        return StatisticsVector(self.query, self.values + other.values, self.suppressed | other.suppressed)


def _columns_for(query: StatisticsQuery, columns: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    missing = [v.name for v in query.variables if v.name not in columns]
    if missing:
        raise StatisticsQueryError(f"the hub's table lacks variable(s) {missing}")
    return [np.asarray(columns[v.name], dtype=np.float64) for v in query.variables]


def exact_statistics(query: StatisticsQuery, columns: Mapping[str, np.ndarray]) -> StatisticsVector:
    """The exact sums (NaN = missing, not counted); values are clamped to the bounds exactly as
    the DP path clamps them, so both estimate the same quantity."""
    parts: list[np.ndarray] = []
    for variable, column in zip(query.variables, _columns_for(query, columns)):
        observed = np.clip(column[~np.isnan(column)], variable.lower, variable.upper)
        centred = observed - variable.centre
        for component in COMPONENTS[query.kind]:
            if component == "n":
                parts.append(np.array([observed.size], dtype=np.float64))
            elif component == "sum":
                parts.append(np.array([centred.sum()]))
            elif component == "sumsq":
                parts.append(np.array([np.square(centred).sum()]))
            elif component == "bins":
                parts.append(np.bincount(np.searchsorted(variable.edges, observed, side="right"), minlength=len(variable.labels)).astype(np.float64))
            else:
                grid = variable.grid_edges()[1:-1]
                parts.append(np.bincount(np.searchsorted(grid, observed, side="right"), minlength=QUANTILE_GRID_BINS).astype(np.float64))
    values = np.concatenate(parts) if parts else np.zeros(0)
    return StatisticsVector(query, values, np.zeros(values.shape, dtype=bool))


def suppress_small_cells(vector: StatisticsVector, min_cell_size: int, *, withhold: bool = True) -> StatisticsVector:
    """Flag every count (n, histogram bin) below `min_cell_size`, the sums of a variable whose n
    is flagged (no mean of fewer patients than the policy allows), and a quantile grid holding
    fewer patients in all (its fine cells are an intermediate for the quantiles, judged as one
    cell). Flagged values are zeroed (`withhold`) - always for exact values; a DP release may
    keep them (`withhold=False`): they are noisy, not raw, so pooled sums stay unbiased, and
    the flag still keeps them out of every displayed estimate."""
    if min_cell_size < 1:
        raise StatisticsQueryError(f"min cell size must be >= 1, got {min_cell_size}")
    small = np.zeros(vector.values.shape, dtype=bool)
    layout = vector.query.layout()
    small_n = {name: bool(vector.values[where][0] < min_cell_size) for name, component, where in layout if component == "n"}
    for name, component, where in layout:
        if component == "bins":
            small[where] = vector.values[where] < min_cell_size
        elif component == "grid":
            small[where] = vector.values[where].sum() < min_cell_size
        else:
            small[where] = small_n[name]
    suppressed = vector.suppressed | small
    return StatisticsVector(vector.query, np.where(suppressed & withhold, 0.0, vector.values), suppressed)


# -- differential privacy (OpenDP) ----------------------------------------------------------------


def _opendp():  # type: ignore[no-untyped-def]
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


def _measurement(dp, variable: VariableQuery, component: Component, epsilon: float):  # type: ignore[no-untyped-def]
    """The OpenDP measurement of one component on one column (NaN = missing), whose map(1) is at
    most `epsilon`. Floats are centred/squared BEFORE entering OpenDP (a per-record map, so the
    record-level sensitivity analysis of the chain is unchanged)."""
    space = dp.vector_domain(dp.atom_domain(T=float, nan=True)), dp.symmetric_distance()
    observed = space >> dp.t.then_drop_null()
    if component == "n":
        return observed >> dp.t.then_count() >> dp.m.then_laplace(1.0 / epsilon)
    if component in ("bins", "grid"):
        edges = list(variable.edges) if component == "bins" else [float(e) for e in variable.grid_edges()[1:-1]]
        binned = (
            observed
            >> dp.t.then_find_bin(edges=edges)
            >> dp.t.then_count_by_categories(categories=list(range(len(edges) + 1)), null_category=False)
        )
        return binned >> dp.m.then_laplace(1.0 / epsilon)
    bounds = (-variable.half_width, variable.half_width) if component == "sum" else (0.0, variable.half_width**2)
    summed = observed >> dp.t.then_clamp(bounds) >> dp.t.then_sum()
    scale = dp.binary_search_param(lambda s: summed >> dp.m.then_laplace(s), d_in=1, d_out=epsilon)
    return summed >> dp.m.then_laplace(scale)


def _prepared(variable: VariableQuery, component: Component, column: np.ndarray) -> list[float]:
    """The column as its component's OpenDP chain reads it (NaN stays NaN = missing)."""
    clamped = np.clip(column, variable.lower, variable.upper)  # NaN passes through
    if component == "sum":
        return (clamped - variable.centre).tolist()
    if component == "sumsq":
        return np.square(clamped - variable.centre).tolist()
    return clamped.tolist()


@dataclass(frozen=True)
class DpStatisticsPlan:
    """The OpenDP measurements of a query at a target epsilon, and their exact cost: a hub
    reserves `cost` in its ledger, and only then calls `release`."""

    query: StatisticsQuery
    epsilon: float
    cost: DpCost
    _measurements: tuple[tuple[object, ...], ...] = field(repr=False)

    def release(self, columns: Mapping[str, np.ndarray]) -> StatisticsVector:
        """Noisy sums of this hub's columns (fresh OpenDP noise on every call)."""
        parts: list[np.ndarray] = []
        for variable, column, measurements in zip(self.query.variables, _columns_for(self.query, columns), self._measurements):
            for component, measurement in zip(COMPONENTS[self.query.kind], measurements):
                released = measurement(_prepared(variable, component, column))  # type: ignore[operator]
                parts.append(np.atleast_1d(np.asarray(released, dtype=np.float64)))
        values = np.concatenate(parts)
        return StatisticsVector(self.query, values, np.zeros(values.shape, dtype=bool))


def plan_dp_statistics(query: StatisticsQuery, epsilon: float) -> DpStatisticsPlan:
    """Split `epsilon` evenly over variables x components and build the measurements; the cost
    is what OpenDP's privacy maps say (never more than `epsilon`, often a hair less)."""
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise StatisticsQueryError(f"epsilon must be a finite number > 0, got {epsilon!r}")
    dp = _opendp()
    components = COMPONENTS[query.kind]
    # A hair below the even share, so that float rounding of the sum never exceeds `epsilon`.
    share = epsilon / (len(query.variables) * len(components)) * (1 - 1e-9)
    measurements, spent = [], 0.0
    for variable in query.variables:
        parts = tuple(_measurement(dp, variable, component, share) for component in components)
        spent += float(dp.c.make_composition(list(parts)).map(1))
        measurements.append(parts)
    cost = DpCost(
        epsilon=spent,
        delta=0.0,
        unit="record",
        mechanism="opendp-laplace",
        details={
            "measure": "MaxDivergence (pure epsilon-DP; delta 0)",
            "composition": "basic over variables x components",
            "kind": query.kind,
            "variables": ",".join(v.name for v in query.variables),
            "epsilon_per_component": share,
        },
    )
    return DpStatisticsPlan(query, epsilon, cost, tuple(measurements))


# -- estimates --------------------------------------------------------------------------------


@dataclass(frozen=True)
class VariableEstimate:
    """The statistics of one variable from (pooled or one hub's) sums. None = not available
    (suppressed, or undefined for too few observations); `suppressed` says which parts."""

    variable: str
    n: float | None = None
    mean: float | None = None
    variance: float | None = None
    histogram: tuple[tuple[str, float | None], ...] = ()
    quantiles: tuple[tuple[float, float], ...] = ()
    suppressed: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "variable": self.variable, "n": self.n, "mean": self.mean, "variance": self.variance,
            "histogram": [{"bin": label, "count": count} for label, count in self.histogram],
            "quantiles": [{"level": level, "value": value} for level, value in self.quantiles],
            "suppressed": list(self.suppressed),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VariableEstimate:
        return cls(
            data["variable"], data["n"], data["mean"], data["variance"],
            tuple((cell["bin"], cell["count"]) for cell in data["histogram"]),
            tuple((item["level"], item["value"]) for item in data["quantiles"]),
            tuple(data["suppressed"]),
        )


def estimates(vector: StatisticsVector) -> tuple[VariableEstimate, ...]:
    """Counts, means, variances, histograms and quantiles from additive sums. Noisy counts
    are clipped at 0 for the estimates (post-processing)."""
    query, values, hidden = vector.query, vector.values, vector.suppressed
    by_variable: dict[str, dict[str, slice]] = {}
    for name, component, where in query.layout():
        by_variable.setdefault(name, {})[component] = where
    results = []
    for variable in query.variables:
        slots = by_variable[variable.name]
        fields: dict[str, object] = {}
        flagged = [component for component, where in slots.items() if bool(np.any(hidden[where]))]
        if "n" in slots and "n" not in flagged:
            n = max(float(values[slots["n"]][0]), 0.0)
            fields["n"] = n
            if "sum" in slots and n >= 1:
                mean_offset = float(values[slots["sum"]][0]) / n
                fields["mean"] = variable.centre + float(np.clip(mean_offset, -variable.half_width, variable.half_width))
                if "sumsq" in slots and n >= 2:
                    second = float(values[slots["sumsq"]][0]) / n
                    fields["variance"] = float(np.clip((second - mean_offset**2) * n / (n - 1), 0.0, variable.half_width**2))
        if "bins" in slots:
            counts = values[slots["bins"]]
            cells = hidden[slots["bins"]]
            fields["histogram"] = tuple(
                (label, None if cell else max(float(count), 0.0)) for label, count, cell in zip(variable.labels, counts, cells)
            )
        if "grid" in slots:
            fields["quantiles"] = _quantiles(variable, values[slots["grid"]])
        results.append(VariableEstimate(variable.name, suppressed=tuple(flagged), **fields))  # type: ignore[arg-type]
    return tuple(results)


def _quantiles(variable: VariableQuery, counts: np.ndarray) -> tuple[tuple[float, float], ...]:
    """Quantiles by linear interpolation in the grid (OpenDP's make_quantiles_from_counts).
    Noisy counts are first made a valid histogram through their running cumulative maximum:
    zeroing negative bins one by one instead would add the positive part of the noise of every
    empty bin and push upper quantiles up."""
    cumulative = np.maximum.accumulate(np.maximum(np.cumsum(counts), 0.0))
    if cumulative[-1] <= 0:
        return ()
    counts = np.diff(cumulative, prepend=0.0)
    dp = _opendp()
    edges = [float(e) for e in variable.grid_edges()]
    to_quantiles = dp.t.make_quantiles_from_counts(edges, list(QUANTILE_LEVELS), interpolation="linear", TA=float, F=float)
    return tuple(zip(QUANTILE_LEVELS, (float(q) for q in to_quantiles([float(c) for c in counts]))))
