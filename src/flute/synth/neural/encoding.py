"""The tabular encoder every neural generator shares, learned federatedly (F-IMSD-13, F-HUF-11..13).

Encoded matrix (float, rows x `EncodedLayout.width`), TVAE/TabDDPM-style:
- first one dimension per NUMERIC column: its normal score z = Phi^-1(F(g + 1/2)), where g is the
  value on the column's grid (integers: step 1; one-decimal numbers: step 0.1) and F the pooled
  CDF of that grid (a quantile transform: heavy tails such as PSA become Gaussian, which the
  models fit far better than raw values); a missing value has z = 0;
- then one one-hot BLOCK per column: the categories of a category or flag column (plus its
  missing code when allowed), and for a numeric column that allows missing values an explicit
  [present, missing] indicator.
Decoding inverts F piecewise-linearly and floors to the grid, so every output is exactly typed
(integers, one-decimal numbers within the schema's bounds, declared categories, 0/1 flags, NaN /
None for missing); a categorical block decodes to its largest entry (logits, probabilities and
noisy one-hots all work).

Why F is learned from secure-summed histograms: categories and bounds are public (declared in
the `TableSchema`), quantiles are not. Every hub counts its rows on a grid of cells spanning the
column's public bounds (values outside are clamped into the outer cells, the schema's rule); the
counts are summed with secure aggregation (`flute.synth.federated.secure_marginal_sum`), with
each hub's share of Gaussian noise when the training is DP, so the coordinator sees only the
(noisy) pooled histogram. Without DP every grid point is its own cell (exact quantiles); with DP
the grid is coarsened to `cells` cells so the noise does not swamp sparse counts. The DP cost of
this release (sensitivity sqrt(numeric columns): one record adds one count per histogram) is part
of the training's charged cost (`flute.synth.neural.federated_fit.plan_privacy`). A pseudo-count
per grid point keeps F strictly increasing, so every grid value stays reachable and encoding then
decoding returns it exactly.

API: `learn_encoder(hubs, schema, sigma=..., plan=..., round_id=..., cells=...)` ->
`TabularEncoder`; `.encode(frame)`, `.decode(matrix)`, `.layout`, `.guidance(conditions)`,
`.to_json()` / `TabularEncoder.from_json(text)`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from flute.privacy.dp.mechanisms import NoisePlan, NoiseSource
from flute.synth.conditions import Condition, evidence
from flute.synth.federated import SynthHub, secure_marginal_sum
from flute.synth.schema import Column, SchemaError, TableSchema

if TYPE_CHECKING:
    import pandas as pd

ENCODER_FORMAT = "flute-synth-encoder/1"
#: Without DP, a column's histogram has one cell per grid point up to this many cells.
EXACT_CELLS = 4096
#: With DP, the default number of histogram cells per numeric column.
DP_CELLS = 64
#: Categories decode without drawing anything; `Column.decode` still takes a generator.
_NO_DRAWS = np.random.default_rng(0)
#: Pseudo-count added per grid point (keeps F strictly increasing; tiny next to real counts).
MASS_FLOOR_PER_GRID_POINT = 0.01


@dataclass(frozen=True)
class CategoricalBlock:
    """One one-hot block of the encoded matrix: columns start .. start + size - 1."""

    column: str
    start: int
    size: int
    missing_indicator: bool  # True: the [present, missing] indicator of a numeric column


@dataclass(frozen=True)
class EncodedLayout:
    """Where each column lives in the encoded matrix: numeric dimensions first, then blocks."""

    numeric: tuple[str, ...]
    blocks: tuple[CategoricalBlock, ...]

    @property
    def width(self) -> int:
        return len(self.numeric) + sum(block.size for block in self.blocks)


@dataclass(frozen=True)
class NumericQuantiles:
    """The pooled CDF of one numeric column, piecewise linear between `knots` (cell edges in grid
    units, increasing, spanning the public bounds) with `cdf` the cumulative share at each knot."""

    column: str
    knots: tuple[float, ...]
    cdf: tuple[float, ...]

    def __post_init__(self) -> None:
        cdf = np.asarray(self.cdf)
        if len(self.knots) != len(cdf) or len(cdf) < 2 or np.any(np.diff(cdf) <= 0) or np.any(np.diff(self.knots) <= 0):
            raise SchemaError(f"quantiles of {self.column!r}: knots and cdf must have equal length >= 2 and both increase strictly")
        if abs(cdf[0]) > 1e-12 or abs(cdf[-1] - 1.0) > 1e-9:
            raise SchemaError(f"quantiles of {self.column!r}: the cdf must run from 0 to 1, got {cdf[0]} .. {cdf[-1]}")

    @classmethod
    def from_counts(cls, column: str, knots: np.ndarray, counts: np.ndarray) -> NumericQuantiles:
        """From (possibly noisy) cell counts: clipped at 0, plus the per-grid-point floor."""
        widths = np.diff(knots)
        mass = np.clip(counts, 0.0, None) + MASS_FLOOR_PER_GRID_POINT * widths
        cdf = np.concatenate([[0.0], np.cumsum(mass)]) / mass.sum()
        cdf[-1] = 1.0
        return cls(column, tuple(float(k) for k in knots), tuple(float(c) for c in cdf))

    def z_of_grid(self, grid: np.ndarray) -> np.ndarray:
        """Normal scores of grid values (clamped into the bounds), at the middle of their step."""
        knots = np.asarray(self.knots)
        inside = np.clip(grid, knots[0], knots[-1] - 1)
        return self.z_of_position(inside + 0.5)

    def z_of_position(self, position: np.ndarray) -> np.ndarray:
        """Normal score of a position on the grid axis (an edge of an allowed range, a value)."""
        from scipy.special import ndtri

        return ndtri(np.interp(position, self.knots, self.cdf))

    def grid_of_z(self, z: np.ndarray) -> np.ndarray:
        """Grid values (integers, within the bounds) of normal scores; non-finite scores clamp."""
        from scipy.special import ndtr

        knots = np.asarray(self.knots)
        position = np.interp(ndtr(np.nan_to_num(np.asarray(z, dtype=np.float64), nan=0.0)), self.cdf, knots)
        return np.clip(np.floor(position), knots[0], knots[-1] - 1)


@dataclass(frozen=True)
class Guidance:
    """What conditions tell a model before it samples (it may use any of it; the rejection
    sampler checks every row exactly anyway): encoded dimensions whose value is KNOWN (the one
    allowed class of a block: 1, its other classes: 0) and, per numeric dimension, the normal-
    score interval [z_low, z_high] the conditions allow (-inf, inf when unrestricted).
    `impossible` names the columns for which no value at all meets the conditions."""

    known_mask: np.ndarray
    known_values: np.ndarray
    z_low: np.ndarray
    z_high: np.ndarray
    impossible: tuple[str, ...]


@dataclass(frozen=True)
class TabularEncoder:
    """A schema plus the pooled quantiles of its numeric columns (schema order)."""

    schema: TableSchema
    quantiles: tuple[NumericQuantiles, ...]

    def __post_init__(self) -> None:
        numeric = tuple(c.name for c in self.schema.columns if c.kind.numeric)
        if tuple(q.column for q in self.quantiles) != numeric:
            raise SchemaError(f"the encoder needs quantiles for the numeric columns {list(numeric)}, got {[q.column for q in self.quantiles]}")

    @property
    def layout(self) -> EncodedLayout:
        numeric = tuple(q.column for q in self.quantiles)
        blocks, start = [], len(numeric)
        for column in self.schema.columns:
            if column.kind.numeric and not column.allow_missing:
                continue
            size = 2 if column.kind.numeric else column.cardinality
            blocks.append(CategoricalBlock(column.name, start, size, column.kind.numeric))
            start += size
        return EncodedLayout(numeric, tuple(blocks))

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """The encoded matrix of a typed frame holding every schema column (see the module doc)."""
        codes = self.schema.discretise(frame)  # checks columns, categories and missing values
        layout = self.layout
        matrix = np.zeros((len(frame), layout.width))
        for index, quantiles in enumerate(self.quantiles):
            column = self.schema.column(quantiles.column)
            grid = column.grid_values(frame[column.name].to_numpy(dtype=np.float64, na_value=np.nan))
            present = ~np.isnan(grid)
            matrix[present, index] = quantiles.z_of_grid(grid[present])
        for block in layout.blocks:
            column = self.schema.column(block.column)
            column_codes = codes[:, self.schema.index(block.column)]
            classes = (column_codes == column.missing_code).astype(np.int64) if block.missing_indicator else column_codes
            matrix[np.arange(len(frame)), block.start + classes] = 1.0
        return matrix

    def decode(self, matrix: np.ndarray) -> pd.DataFrame:
        """Typed rows of an encoded (or generated) matrix."""
        matrix = np.asarray(matrix, dtype=np.float64)
        layout = self.layout
        if matrix.ndim != 2 or matrix.shape[1] != layout.width:
            raise ValueError(f"expected an encoded matrix with {layout.width} columns, got shape {matrix.shape}")
        values: dict[str, np.ndarray] = {}
        for index, quantiles in enumerate(self.quantiles):
            column = self.schema.column(quantiles.column)
            values[column.name] = np.round(quantiles.grid_of_z(matrix[:, index]) / column.kind.grid_per_unit, 1)
        for block in layout.blocks:
            classes = np.argmax(matrix[:, block.start : block.start + block.size], axis=1)
            if block.missing_indicator:
                values[block.column] = np.where(classes == 1, np.nan, values[block.column])
            else:
                values[block.column] = self.schema.column(block.column).decode(classes, _NO_DRAWS)
        return self.schema.typed_frame(values)

    def guidance(self, conditions: Sequence[Condition]) -> Guidance:
        """The known dimensions and numeric intervals implied by `conditions` (checked against
        the schema: a malformed condition raises ConditionError here)."""
        found = evidence(conditions, self.schema)
        layout = self.layout
        known_mask, known_values = np.zeros(layout.width, dtype=bool), np.zeros(layout.width)
        z_low, z_high = np.full(len(self.quantiles), -np.inf), np.full(len(self.quantiles), np.inf)
        impossible = [c.name for c, weights in zip(self.schema.columns, found.weights) if not np.any(weights > 0)]
        for block in layout.blocks:
            weights = found.weights[self.schema.index(block.column)]
            allowed = np.array([True, weights[-1] > 0]) if block.missing_indicator else weights > 0
            if allowed.sum() == 1:
                known_mask[block.start : block.start + block.size] = True
                known_values[block.start + int(np.argmax(allowed))] = 1.0
        for index, quantiles in enumerate(self.quantiles):
            column = self.schema.column(quantiles.column)
            weights = found.weights[self.schema.index(column.name)][: len(column.edges) - 1]
            if column.name in found.bounds and np.any(weights > 0):
                ranges = found.bounds[column.name][weights > 0]
                z_low[index] = quantiles.z_of_position(np.array([ranges[:, 0].min()], dtype=np.float64))[0]
                z_high[index] = quantiles.z_of_position(np.array([ranges[:, 1].max()], dtype=np.float64))[0]
        return Guidance(known_mask, known_values, z_low, z_high, tuple(impossible))

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": ENCODER_FORMAT,
                "schema": json.loads(self.schema.to_json()),
                "quantiles": [{"column": q.column, "knots": list(q.knots), "cdf": list(q.cdf)} for q in self.quantiles],
            }
        )

    @classmethod
    def from_json(cls, text: str | Mapping[str, Any], *, source: str = "encoder") -> TabularEncoder:
        try:
            data = json.loads(text) if isinstance(text, str) else dict(text)
            if data.get("format") != ENCODER_FORMAT:
                raise SchemaError(f"{source}: expected format {ENCODER_FORMAT!r}, got {data.get('format')!r}")
            schema = TableSchema.from_json(json.dumps(data["schema"]), source=source)
            quantiles = tuple(NumericQuantiles(str(q["column"]), tuple(q["knots"]), tuple(q["cdf"])) for q in data["quantiles"])
        except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
            raise SchemaError(f"{source}: not a FLUTE tabular encoder ({exc})") from exc
        return cls(schema, quantiles)


def histogram_schema(schema: TableSchema, cells: int) -> TableSchema | None:
    """One column per numeric schema column, binned into at most `cells` equal runs of grid
    points over its public bounds (None when the schema has no numeric column)."""
    if cells < 1:
        raise ValueError(f"cells must be >= 1, got {cells}")
    columns = [_histogram_column(c, cells) for c in schema.columns if c.kind.numeric]
    return TableSchema(tuple(columns)) if columns else None


def learn_encoder(
    hubs: Sequence[SynthHub], schema: TableSchema, *, sigma: float | None, plan: NoisePlan, round_id: str,
    cells: int = EXACT_CELLS, noise: Callable[[], NoiseSource] = NoiseSource.secure,
) -> TabularEncoder:
    """The encoder of `schema` with quantiles from the hubs' secure-summed (with `sigma`: noisy)
    numeric histograms; the caller has charged the release's cost (see the module doc)."""
    grid_schema = histogram_schema(schema, cells)
    if grid_schema is None:
        return TabularEncoder(schema, ())
    marginals = [(index,) for index in range(len(grid_schema.columns))]
    tables = secure_marginal_sum(hubs, grid_schema, marginals, sigma, plan, round_id, noise)
    quantiles = []
    for index, column in enumerate(grid_schema.columns):
        counts = tables[(index,)][: len(column.edges) - 1]  # the missing code is not part of F
        quantiles.append(NumericQuantiles.from_counts(column.name, _knots(column), counts))
    return TabularEncoder(schema, tuple(quantiles))


def _knots(column: Column) -> np.ndarray:
    return np.round(np.asarray(column.edges) * column.kind.grid_per_unit)


def _histogram_column(column: Column, cells: int) -> Column:
    bounds = column.grid_bounds()
    low, high = int(bounds[0, 0]), int(bounds[-1, 1])
    step = max(1, -(-(high - low) // cells))
    knots = list(range(low, high, step)) + [high]
    return Column(column.name, column.kind, edges=tuple(k / column.kind.grid_per_unit for k in knots), allow_missing=True)
