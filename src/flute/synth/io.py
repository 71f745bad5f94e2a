"""Synthetic tables on disk (F-IMSD-1): a CSV with typed columns and, next to it, the schema as
JSON (`DATA.csv` -> `DATA.schema.json`), so a reader never has to guess a column's type.

Reading validates every value against the schema (unknown category, value off its grid, missing
where none is allowed) and names the file, column and row of the first problem.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from flute.synth.schema import SchemaError, TableSchema

if TYPE_CHECKING:
    import pandas as pd


def schema_path(csv: Path) -> Path:
    return csv.with_suffix(".schema.json")


def write_table(frame: pd.DataFrame, schema: TableSchema, csv: Path) -> Path:
    """Write the CSV (schema column order, typed: 4 not 4.0 for an integer, empty cell =
    missing) and its schema; returns the schema's path."""
    schema.discretise(frame)  # refuses a frame that does not fit the schema
    typed = schema.typed_frame({name: frame[name].to_numpy(dtype=object) for name in schema.names})
    typed.to_csv(csv, index=False, na_rep="")
    schema_path(csv).write_text(schema.to_json())
    return schema_path(csv)


def read_table(csv: Path, schema: TableSchema | None = None) -> tuple[pd.DataFrame, TableSchema]:
    """A typed frame of the CSV, checked against `schema` (default: the schema file next to it)."""
    import pandas as pd

    if schema is None:
        if not schema_path(csv).exists():
            raise SchemaError(f"{csv}: no schema given and {schema_path(csv)} does not exist; pass the schema JSON")
        schema = TableSchema.from_json(schema_path(csv).read_text(), source=str(schema_path(csv)))
    raw = pd.read_csv(csv, dtype=str, keep_default_na=False)
    absent = [name for name in schema.names if name not in raw.columns]
    if absent:
        raise SchemaError(f"{csv}: column(s) {absent} of the schema are missing (it has {list(raw.columns)})")
    values = {}
    for column in schema.columns:
        cells = raw[column.name].str.strip()
        empty = (cells == "").to_numpy()
        if column.kind.numeric:
            numbers = pd.to_numeric(cells.where(~cells.eq(""), None), errors="coerce").to_numpy(dtype=np.float64)
            bad = np.flatnonzero(np.isnan(numbers) & ~empty)
            off_grid = np.flatnonzero(~np.isnan(numbers) & (np.abs(column.grid_values(numbers) - numbers * column.kind.grid_per_unit) > 1e-6))
            for rows, why in ((bad, "is not a number"), (off_grid, f"is not a {column.kind.value} value")):
                if len(rows):
                    raise SchemaError(f"{csv}: column {column.name!r}, data row {rows[0] + 1}: {cells.iloc[rows[0]]!r} {why}")
            values[column.name] = numbers
        else:
            values[column.name] = np.array([None if e else c for c, e in zip(cells, empty)], dtype=object)
        try:
            column.encode(values[column.name])
        except SchemaError as exc:
            raise SchemaError(f"{csv}: {exc}") from exc
    return schema.typed_frame(values), schema
