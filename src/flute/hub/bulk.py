"""Set-at-a-time SQL for the hub's hot paths (ingest, study-row derivation): bulk inserts and
membership in a long list of values.

Bulk inserts: on SQLite the rows go straight to the driver's executemany: SQLAlchemy's per-row parameter
handling would cost more than SQLite's own work. The values still pass through each column's
bind processor for the dialect, so what is stored is exactly what SQLAlchemy would store.
Elsewhere (PostgreSQL) SQLAlchemy's batched multi-row INSERT is already efficient and is used.

Membership (`in_values`): an expanding IN renders and binds one placeholder per value on every
execution, which for the thousands of ids of an ingest chunk cost more than SQLite's lookups
themselves; on SQLite the list is therefore bound as one JSON array read by `json_each`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from functools import lru_cache
from typing import Any, NamedTuple

import orjson
from sqlalchemy import ColumnElement, Connection, Dialect, Table, Text, TypeDecorator, bindparam, func, select


class _JsonArray(TypeDecorator[Collection[Any]]):
    """A collection of values bound as the text of a JSON array."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Collection[Any] | None, dialect: Dialect) -> str | None:
        return None if value is None else orjson.dumps(list(value)).decode("utf-8")


def in_values(column: ColumnElement[Any], name: str, dialect_name: str) -> ColumnElement[bool]:
    """`column IN (the values bound as parameter `name`)`, passed as any collection of JSON
    scalars: one JSON array parameter on SQLite, an expanding IN elsewhere."""
    if dialect_name == "sqlite":
        values = func.json_each(bindparam(name, type_=_JsonArray())).table_valued("value")
        return column.in_(select(values.c.value))
    return column.in_(bindparam(name, expanding=True))


def bulk_insert(connection: Connection, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert `rows` (tuples in the order of `columns`) into `table` in one executemany."""
    if not rows:
        return
    plan = _insert_plan(table, tuple(columns), connection.dialect)
    if plan.sql is None:
        connection.execute(table.insert(), [dict(zip(columns, row, strict=True)) for row in rows])
        return
    # Column by column (transposed with zip, in C): only the columns whose type has a bind
    # processor are touched in Python, once per distinct value.
    values_by_column: list[Sequence[Any]] = list(zip(*rows, strict=True))
    for i, process in enumerate(plan.processors):
        if process is not None:
            values_by_column[i] = _processed(values_by_column[i], process)
    connection.exec_driver_sql(plan.sql, list(zip(*(values_by_column[i] for i in plan.order))))


class _InsertPlan(NamedTuple):
    """A compiled bulk insert: its SQL (None where the dialect needs SQLAlchemy's own path:
    named parameters, or RETURNING), the column index of each placeholder in turn, and each
    column's bind processor."""

    sql: str | None
    order: tuple[int, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]


@lru_cache(maxsize=64)
def _insert_plan(table: Table, columns: tuple[str, ...], dialect: Dialect) -> _InsertPlan:
    """Compiled once per table, columns and engine: compiling cost ~0.2 ms a call (a few per
    ingest chunk and per derivation chunk) and left reference cycles for the collector."""
    compiled = table.insert().compile(dialect=dialect, column_keys=list(columns))
    if not compiled.positional or compiled.implicit_returning:
        return _InsertPlan(None, (), ())
    position = {name: i for i, name in enumerate(columns)}
    # The dialect's implementation of each type: generic DateTime has no processor of its own.
    processors = tuple(table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns)
    return _InsertPlan(compiled.string, tuple(position[name] for name in compiled.positiontup or ()), processors)


def _processed(values: Sequence[Any], process: Callable[[Any], Any]) -> list[Any]:
    """`values` through a bind processor, each distinct value once: flags and a chunk's
    timestamp repeat on every row."""
    memo = {value: process(value) for value in set(values)}
    return [memo[value] for value in values]
