"""The typed table a synthetic-data generator learns and emits, and its PUBLIC discretisation
(F-IMSD-1, F-IMSD-13, NF-IMSD-4).

Why fixed public bins: a bin edge computed from the data (a quantile, the observed maximum) is
itself a release about the records. Every numeric column is therefore binned on bounds and edges
declared here per StudyVariable, before any data is seen; the discretisation costs no privacy
budget. Values outside the declared bounds are clamped into the first or last bin (a public rule;
the decoded value then lies within the bounds).

Typed values live on a grid (integers: step 1; one-decimal numbers: step 0.1). A bin holds the grid
values edges[i] <= v < edges[i + 1]; decoding draws a grid value uniformly within the bin, so it
is exactly typed and re-discretises to the same bin. Columns that allow missing values get one
extra code (the last) for "missing", decoded to NaN.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np

from flute.cohort.variables import AGE, PROSTATE_VOLUME, PSA, VARIABLES_BY_NAME, VariableKind

if TYPE_CHECKING:
    import pandas as pd

CENTRE = "centre"
CSPCA = "csPCa"
SCHEMA_FORMAT = "flute-synth-schema/1"


class SchemaError(ValueError):
    """A schema, a column or a value does not fit the declared table."""


class ColumnKind(str, Enum):
    INTEGER = "integer"
    DECIMAL1 = "decimal1"  # at most one decimal place
    CATEGORY = "category"
    FLAG = "flag"  # 0/1

    @property
    def numeric(self) -> bool:
        return self in (ColumnKind.INTEGER, ColumnKind.DECIMAL1)

    @property
    def grid_per_unit(self) -> int:
        """Grid points per unit: typed values are integers of 1 / grid_per_unit."""
        return 10 if self is ColumnKind.DECIMAL1 else 1


Category = int | str


@dataclass(frozen=True)
class Column:
    """One column: numeric kinds carry bin `edges` (on their grid, increasing, last edge
    exclusive), categorical kinds their `categories` (FLAG: (0, 1))."""

    name: str
    kind: ColumnKind
    edges: tuple[float, ...] = ()
    categories: tuple[Category, ...] = ()
    allow_missing: bool = False

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise SchemaError("a column needs a name")
        if self.kind.numeric:
            grid = self._grid_edges()
            if not np.allclose(grid, np.asarray(self.edges) * self.kind.grid_per_unit, atol=1e-9):
                raise SchemaError(f"column {self.name!r}: edges {self.edges} are not on the {self.kind.value} grid")
            if len(grid) < 2 or np.any(np.diff(grid) <= 0) or self.categories:
                raise SchemaError(f"column {self.name!r}: a {self.kind.value} column needs >= 2 strictly increasing edges and no categories")
        else:
            if self.edges:
                raise SchemaError(f"column {self.name!r}: a {self.kind.value} column takes categories, not edges")
            if self.kind is ColumnKind.FLAG and tuple(self.categories) != (0, 1):
                raise SchemaError(f"column {self.name!r}: a flag column has categories (0, 1), got {self.categories}")
            if not self.categories or len(set(self.categories)) != len(self.categories):
                raise SchemaError(f"column {self.name!r}: categories must be non-empty and distinct, got {self.categories}")

    @property
    def cardinality(self) -> int:
        """Number of codes, the missing code included."""
        values = len(self.edges) - 1 if self.kind.numeric else len(self.categories)
        return values + int(self.allow_missing)

    @property
    def missing_code(self) -> int | None:
        return self.cardinality - 1 if self.allow_missing else None

    def labels(self) -> list[str]:
        """Human-readable label of every code (reports, evaluation)."""
        if self.kind.numeric:
            labels = [f"[{lo:g}, {hi:g})" for lo, hi in zip(self.edges[:-1], self.edges[1:])]
        else:
            labels = [str(c) for c in self.categories]
        return labels + (["missing"] if self.allow_missing else [])

    def _grid_edges(self) -> np.ndarray:
        return np.round(np.asarray(self.edges, dtype=np.float64) * self.kind.grid_per_unit).astype(np.int64)

    def grid_values(self, values: np.ndarray) -> np.ndarray:
        """Numeric values as integers on this column's grid (NaN stays NaN, as float)."""
        return np.round(np.asarray(values, dtype=np.float64) * self.kind.grid_per_unit)

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Codes of typed values (see the module docstring); unknown categories and missing
        values in a column that allows none are refused, naming the column."""
        values = np.asarray(values, dtype=object if not self.kind.numeric else np.float64)
        missing = _is_missing(values)
        if missing.any() and not self.allow_missing:
            raise SchemaError(f"column {self.name!r} has {int(missing.sum())} missing value(s) but the schema allows none")
        codes = np.empty(len(values), dtype=np.int64)
        if self.kind.numeric:
            grid = self.grid_values(np.where(missing, 0.0, values))
            edges = self._grid_edges()
            codes[:] = np.clip(np.searchsorted(edges, grid, side="right") - 1, 0, len(edges) - 2)
        else:
            index = {category_key(c): i for i, c in enumerate(self.categories)}
            present = [category_key(v) for v in values[~missing]]
            unknown = sorted({str(v) for v in present if v not in index})
            if unknown:
                raise SchemaError(f"column {self.name!r}: value(s) {unknown} are not among the declared categories {list(self.categories)}")
            codes[~missing] = [index[v] for v in present]
        if self.allow_missing:
            codes[missing] = self.missing_code
        return codes

    def decode(self, codes: np.ndarray, rng: np.random.Generator, bounds: np.ndarray | None = None) -> np.ndarray:
        """Typed values for codes: a numeric code draws a grid value uniformly within its bin, or
        within `bounds[code]` = [low, high) grid integers when given (conditional sampling narrows
        a bin); categories map back; missing -> NaN (numeric) or None."""
        codes = np.asarray(codes, dtype=np.int64)
        if self.kind.numeric:
            return self._decode_numeric(codes, rng, bounds)
        out = np.empty(len(codes), dtype=object)
        for code, category in enumerate(self.categories):
            out[codes == code] = category
        if self.allow_missing:
            out[codes == self.missing_code] = None
        return out

    def grid_bounds(self) -> np.ndarray:
        """The grid integers [low, high) of every numeric bin (bins x 2)."""
        edges = self._grid_edges()
        return np.column_stack([edges[:-1], edges[1:]])

    def _decode_numeric(self, codes: np.ndarray, rng: np.random.Generator, bounds: np.ndarray | None) -> np.ndarray:
        edges = self._grid_edges()
        out = np.full(len(codes), np.nan)
        present = codes != self.missing_code if self.allow_missing else np.ones(len(codes), dtype=bool)
        if bounds is None:
            low, high = edges[codes[present]], edges[codes[present] + 1]
        else:
            low, high = bounds[codes[present], 0], bounds[codes[present], 1]
        grid = low + np.floor(rng.random(int(present.sum())) * (high - low)).astype(np.int64)
        out[present] = grid / self.kind.grid_per_unit
        return np.round(out, 1)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "kind": self.kind.value, "allow_missing": self.allow_missing}
        if self.kind.numeric:
            data["edges"] = list(self.edges)
        else:
            data["categories"] = list(self.categories)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Column:
        try:
            return cls(
                str(data["name"]), ColumnKind(data["kind"]), tuple(data.get("edges", ())), tuple(data.get("categories", ())),
                bool(data.get("allow_missing", False)),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise SchemaError(f"invalid column declaration {dict(data)!r}: {exc}") from exc


@dataclass(frozen=True)
class TableSchema:
    """The ordered columns of a synthetic table; saved as JSON next to every CSV."""

    columns: tuple[Column, ...]

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if not names or len(set(names)) != len(names):
            raise SchemaError(f"a schema needs distinct column names, got {names}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def cardinalities(self) -> tuple[int, ...]:
        return tuple(c.cardinality for c in self.columns)

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise SchemaError(f"no column {name!r} in the schema; columns are {list(self.names)}")

    def index(self, name: str) -> int:
        return self.names.index(self.column(name).name)

    def discretise(self, frame: pd.DataFrame) -> np.ndarray:
        """Codes (rows x columns, int64) of a typed frame holding every schema column."""
        absent = [name for name in self.names if name not in frame.columns]
        if absent:
            raise SchemaError(f"the table lacks column(s) {absent} declared in the schema")
        if not self.columns:
            return np.empty((len(frame), 0), dtype=np.int64)
        return np.column_stack([c.encode(frame[c.name].to_numpy()) for c in self.columns]).astype(np.int64)

    def decode(self, codes: np.ndarray, rng: np.random.Generator, bounds: Mapping[str, np.ndarray] | None = None) -> pd.DataFrame:
        """The typed frame of a code matrix (see `typed_frame` for the dtypes)."""
        bounds = bounds or {}
        return self.typed_frame({c.name: c.decode(codes[:, i], rng, bounds.get(c.name)) for i, c in enumerate(self.columns)})

    def typed_frame(self, values: Mapping[str, np.ndarray]) -> pd.DataFrame:
        """Columns with their typed dtypes: integers, flags and integer categories as nullable
        Int64, one-decimal numbers as float64 (NaN missing), text categories as strings."""
        import pandas as pd

        data = {}
        for column in self.columns:
            raw = values[column.name]
            if column.kind is ColumnKind.DECIMAL1:
                data[column.name] = pd.Series(np.asarray(raw, dtype=np.float64).round(1), dtype="float64")
            elif column.kind is ColumnKind.INTEGER or all(isinstance(c, int) for c in column.categories):
                numbers = pd.to_numeric(pd.Series(np.asarray(raw)), errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)  # vectorised: samplers decode 1e5+ rows
                data[column.name] = pd.Series(numbers, dtype="float64").round().astype("Int64")
            else:
                data[column.name] = pd.Series([None if _is_missing_one(v) else str(v) for v in raw], dtype="string")
        return pd.DataFrame(data)

    def to_json(self) -> str:
        return json.dumps({"format": SCHEMA_FORMAT, "columns": [c.to_json() for c in self.columns]}, indent=2)

    @classmethod
    def from_json(cls, text: str, *, source: str = "schema") -> TableSchema:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SchemaError(f"{source}: not JSON ({exc})") from exc
        if not isinstance(data, dict) or data.get("format") != SCHEMA_FORMAT:
            raise SchemaError(f"{source}: expected a JSON object with format {SCHEMA_FORMAT!r}")
        return cls(tuple(Column.from_json(c) for c in data["columns"]))


#: Public bin edges of the numeric StudyVariables (clinically meaningful cut points, declared
#: before any data is seen). The outer edges bound the decoded values.
PUBLIC_EDGES: Mapping[str, tuple[float, ...]] = {
    AGE: (40, 50, 55, 60, 65, 70, 75, 80, 91),
    PSA: (0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 13.0, 20.0, 30.0, 100.0),
    PROSTATE_VOLUME: (10.0, 25.0, 35.0, 45.0, 55.0, 70.0, 90.0, 120.0, 250.0),
}

_KINDS = {VariableKind.INTEGER: ColumnKind.INTEGER, VariableKind.DECIMAL1: ColumnKind.DECIMAL1, VariableKind.BINARY: ColumnKind.FLAG,
          VariableKind.CATEGORY: ColumnKind.CATEGORY}


def variable_column(name: str) -> Column:
    """The synthesis column of a StudyVariable, missing allowed (any hub may lack a value)."""
    if name not in VARIABLES_BY_NAME:
        raise SchemaError(f"{name!r} is not a StudyVariable; known: {sorted(VARIABLES_BY_NAME)}")
    spec = VARIABLES_BY_NAME[name]
    kind = _KINDS[spec.kind]
    if kind.numeric:
        return Column(name, kind, edges=PUBLIC_EDGES[name], allow_missing=True)
    return Column(name, kind, categories=spec.codes, allow_missing=True)


def study_schema(variables: Sequence[str], centres: Sequence[str]) -> TableSchema:
    """StudyVariables, then the centre (one category per hub, public) and the csPCa label."""
    return TableSchema(
        (*(variable_column(v) for v in variables), Column(CENTRE, ColumnKind.CATEGORY, categories=tuple(centres)), Column(CSPCA, ColumnKind.FLAG, categories=(0, 1)))
    )


def category_key(value: Any) -> Category:
    """Categories compare by value: 4, 4.0 and '4' of an integer category are the same code."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return str(value)


def _is_missing_one(value: Any) -> bool:
    """None, NaN and pandas' NA are missing."""
    if value is None:
        return True
    if isinstance(value, (float, np.floating)):
        return math.isnan(value)
    import pandas as pd

    return value is pd.NA


def _is_missing(values: np.ndarray) -> np.ndarray:
    if values.dtype != object:
        return np.isnan(values)
    return np.array([_is_missing_one(v) for v in values], dtype=bool)
