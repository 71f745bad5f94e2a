"""Conditions of a conditional synthetic-data request (F-HUF-17, F-IMSD-6): `cspca=1`,
`age>70`, `pirads in 4|5`, `centre=RUMC`.

Every condition restricts ONE column, so it becomes per-code evidence for the tree model:
for a numeric bin, the share of its grid values that satisfy the condition (the decoder draws
grid values uniformly within a bin, so this conditions the model EXACTLY) and the narrowed grid
range the decoder then draws from; for a category, 1 or 0. A condition on a column excludes its
missing code. Conditions across columns (e.g. a PSA density threshold) are not supported and are
refused by the parser, so no request ever falls back to approximate sampling.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from flute.synth.schema import Column, TableSchema, category_key

if TYPE_CHECKING:
    import pandas as pd

Operator = Literal["=", "!=", "<", "<=", ">", ">=", "in"]
_PATTERN = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(<=|>=|!=|=|<|>|\s+in\s+)\s*(.+?)\s*$")
#: Column aliases accepted on the command line (lower case).
ALIASES = {"age": "ageAtBiopsy", "cspca": "csPCa", "volume": "prostateVolume", "center": "centre"}


class ConditionError(ValueError):
    """A condition is malformed, names an unknown column, or cannot be met."""


@dataclass(frozen=True)
class Condition:
    column: str
    operator: Operator
    values: tuple[float | str, ...]

    def describe(self) -> str:
        return f"{self.column} {self.operator} {'|'.join(str(v) for v in self.values)}"


def parse_conditions(text: str, schema: TableSchema) -> tuple[Condition, ...]:
    """Comma-separated conditions, e.g. "cspca=1,age>70,pirads in 4|5,centre=RUMC"."""
    conditions = []
    for part in (p for p in text.split(",") if p.strip()):
        match = _PATTERN.match(part)
        if match is None:
            raise ConditionError(f"cannot read condition {part.strip()!r}; write COLUMN OP VALUE with OP one of = != < <= > >= in (e.g. age>70, pirads in 4|5)")
        name, operator, raw = match.group(1), match.group(2).strip(), match.group(3)
        column = _resolve(name, schema)
        values = tuple(v.strip() for v in raw.split("|")) if operator == "in" else (raw.strip(),)
        conditions.append(Condition(column.name, operator, tuple(_typed(column, v, part) for v in values)))  # type: ignore[arg-type]
    return tuple(conditions)


def holds(conditions: Sequence[Condition], frame: pd.DataFrame) -> np.ndarray:
    """Which rows of a typed frame satisfy every condition (missing never does)."""
    ok = np.ones(len(frame), dtype=bool)
    for condition in conditions:
        series = frame[condition.column]
        present = series.notna().to_numpy()
        if condition.operator in ("in", "=", "!="):
            keys = [category_key(v) for v in series.to_numpy(dtype=object)]
            wanted = {category_key(v) for v in condition.values}
            inside = np.array([k in wanted for k in keys], dtype=bool)
            ok &= present & (~inside if condition.operator == "!=" else inside)
        else:
            values = series.to_numpy(dtype=np.float64, na_value=np.nan)
            ok &= present & _compare(np.nan_to_num(values), condition.operator, float(condition.values[0]))
    return ok


@dataclass(frozen=True)
class Evidence:
    """Per column: a weight per code (1 = unrestricted) and, for conditioned numeric columns,
    the narrowed grid range of every bin."""

    weights: tuple[np.ndarray, ...]
    bounds: dict[str, np.ndarray]


def evidence(conditions: Sequence[Condition], schema: TableSchema) -> Evidence:
    weights = [np.ones(c.cardinality) for c in schema.columns]
    bounds: dict[str, np.ndarray] = {}
    for condition in conditions:
        index = schema.index(condition.column)
        column = schema.columns[index]
        if column.kind.numeric:
            share, narrowed = _numeric_evidence(column, condition, bounds.get(column.name, column.grid_bounds()))
            weights[index][: len(share)] *= share
            bounds[column.name] = narrowed
        else:
            wanted = {category_key(v) for v in condition.values}
            inside = np.array([category_key(c) in wanted for c in column.categories], dtype=float)
            weights[index][: len(inside)] *= 1.0 - inside if condition.operator == "!=" else inside
        if column.allow_missing:
            weights[index][-1] = 0.0
    return Evidence(tuple(weights), bounds)


def _numeric_evidence(column: Column, condition: Condition, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The share of each bin's ORIGINAL grid values left by the condition (on top of earlier
    conditions on this column, via `current`) and the narrowed ranges."""
    if condition.operator in ("in", "!="):
        raise ConditionError(f"condition {condition.describe()!r}: numeric columns take = < <= > >= (an interval), not {condition.operator!r}")
    grid = int(round(float(condition.values[0]) * column.kind.grid_per_unit))
    low, high = current[:, 0].copy(), current[:, 1].copy()
    if condition.operator in (">", ">="):
        low = np.maximum(low, grid + (1 if condition.operator == ">" else 0))
    if condition.operator in ("<", "<="):
        high = np.minimum(high, grid + (1 if condition.operator == "<=" else 0))
    if condition.operator == "=":
        low, high = np.maximum(low, grid), np.minimum(high, grid + 1)
    high = np.maximum(high, low)
    original = column.grid_bounds()
    return (high - low) / (original[:, 1] - original[:, 0]), np.column_stack([low, high])


def _compare(values: np.ndarray, operator: str, threshold: float) -> np.ndarray:
    values = np.round(values, 1)
    return {"<": values < threshold, "<=": values <= threshold, ">": values > threshold, ">=": values >= threshold, "=": values == threshold}[operator]


def _resolve(name: str, schema: TableSchema) -> Column:
    wanted = ALIASES.get(name.lower(), name)
    for column in schema.columns:
        if column.name.lower() == wanted.lower():
            return column
    raise ConditionError(f"condition names unknown column {name!r}; columns are {list(schema.names)} (aliases: {ALIASES})")


def _typed(column: Column, raw: str, part: str) -> float | str:
    if column.kind.numeric:
        try:
            value = float(raw)
        except ValueError:
            raise ConditionError(f"condition {part.strip()!r}: {column.name} is numeric, {raw!r} is not a number") from None
        return value
    known = {category_key(c) for c in column.categories}
    if category_key(raw) not in known:
        raise ConditionError(f"condition {part.strip()!r}: {raw!r} is not a category of {column.name} ({list(column.categories)})")
    return raw

