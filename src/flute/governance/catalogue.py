"""The data catalogue (NF-PIL-6, F-PIL-16/18, NF-PIL-8): what a hub publishes about each of its
datasets, and how researchers search it.

A hub computes its datasets' metadata from its own store and publishes it to the coordinator.
The metadata must not become a side channel (F-PIL-11): the dataset size is published as a
bucket ("500-999") unless the data owner explicitly allows the exact count, and the share of
non-missing values per variable is published as a coarse band, never as a count.

Everything here is pure: building metadata from a StudyTable and the owner's declaration,
serialising it, and searching a list of entries.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

import numpy as np

from flute.cohort.table import StudyTable
from flute.cohort.variables import VARIABLE_NAMES

#: Published instead of exact counts: (lower bound inclusive, label); each bucket ends where the next begins.
SIZE_BUCKETS: Final[tuple[tuple[int, str], ...]] = (
    (0, "<100"),
    (100, "100-499"),
    (500, "500-999"),
    (1000, "1000-4999"),
    (5000, ">=5000"),
)

#: Share of non-missing values per variable, published as a band: "none" for no value at all,
#: else the last band whose lower bound (inclusive) the share reaches.
NO_VALUES: Final[str] = "none"
AVAILABILITY_BANDS: Final[tuple[tuple[float, str], ...]] = (
    (0.0, "<50%"),
    (0.5, "50-89%"),
    (0.9, "90-99%"),
    (1.0, "100%"),
)
AVAILABILITY_ORDER: Final[tuple[str, ...]] = (NO_VALUES, *(label for _, label in AVAILABILITY_BANDS))

DATASET_ID_PATTERN: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class CatalogueError(ValueError):
    """Metadata or a search that cannot be accepted; the message says what and how to fix it."""


def size_bucket(count: int) -> str:
    """The published size of a dataset of `count` records."""
    if count < 0:
        raise CatalogueError(f"a record count cannot be negative, got {count}")
    label = SIZE_BUCKETS[0][1]
    for lower, name in SIZE_BUCKETS:
        if count >= lower:
            label = name
    return label


def availability_band(share: float) -> str:
    """The published band of a variable's non-missing share in [0, 1]."""
    if not 0.0 <= share <= 1.0:
        raise CatalogueError(f"a non-missing share must lie in [0, 1], got {share!r}")
    if share == 0.0:
        return NO_VALUES
    label = AVAILABILITY_BANDS[0][1]
    for lower, name in AVAILABILITY_BANDS:
        if share >= lower:
            label = name
    return label


@dataclass(frozen=True)
class DatasetDeclaration:
    """What the data owner states about a dataset; the rest of its metadata is computed.

    `conditions_of_use` and `guidance` are markdown (F-PIL-19, NF-PIL-8), rendered safely
    (`flute.governance.documents.render_markdown`). `open_access` datasets may be used by any
    signed-in researcher; all others only under an approved access request (NF-PIL-9).
    `exact_size_allowed` lets the owner publish the exact record count instead of a bucket."""

    dataset: str
    title: str
    description: str
    conditions_of_use: str
    contact: str
    guidance: str = ""
    coverage_start: date | None = None
    coverage_end: date | None = None
    open_access: bool = False
    exact_size_allowed: bool = False

    def __post_init__(self) -> None:
        if not DATASET_ID_PATTERN.match(self.dataset):
            raise CatalogueError(
                f"dataset id {self.dataset!r} is not valid: use 1-64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        for name in ("title", "conditions_of_use", "contact"):
            if not getattr(self, name).strip():
                raise CatalogueError(f"dataset {self.dataset!r}: {name} must not be empty (researchers must see it before requesting access)")
        if self.coverage_start and self.coverage_end and self.coverage_start > self.coverage_end:
            raise CatalogueError(
                f"dataset {self.dataset!r}: coverage starts {self.coverage_start} after it ends {self.coverage_end}"
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "title": self.title,
            "description": self.description,
            "conditions_of_use": self.conditions_of_use,
            "contact": self.contact,
            "guidance": self.guidance,
            "coverage_start": self.coverage_start.isoformat() if self.coverage_start else None,
            "coverage_end": self.coverage_end.isoformat() if self.coverage_end else None,
            "open_access": self.open_access,
            "exact_size_allowed": self.exact_size_allowed,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], *, source: str) -> DatasetDeclaration:
        return cls(
            dataset=_text(data, "dataset", source),
            title=_text(data, "title", source),
            description=_text(data, "description", source),
            conditions_of_use=_text(data, "conditions_of_use", source),
            contact=_text(data, "contact", source),
            guidance=_text(data, "guidance", source),
            coverage_start=_date(data.get("coverage_start"), f"{source}.coverage_start"),
            coverage_end=_date(data.get("coverage_end"), f"{source}.coverage_end"),
            open_access=bool(data.get("open_access", False)),
            exact_size_allowed=bool(data.get("exact_size_allowed", False)),
        )


@dataclass(frozen=True)
class VariableAvailability:
    name: str
    band: str


@dataclass(frozen=True)
class DatasetMetadata:
    """One catalogue entry as published by a hub."""

    hub: str
    declaration: DatasetDeclaration
    size: str
    variables: tuple[VariableAvailability, ...]
    data_as_of: datetime | None
    published_at: datetime

    @property
    def key(self) -> tuple[str, str]:
        return (self.hub, self.declaration.dataset)

    def band_of(self, variable: str) -> str:
        for item in self.variables:
            if item.name == variable:
                return item.band
        return NO_VALUES

    def to_json(self) -> dict[str, Any]:
        return {
            "hub": self.hub,
            **self.declaration.to_json(),
            "size": self.size,
            "variables": {item.name: item.band for item in self.variables},
            "data_as_of": self.data_as_of.isoformat() if self.data_as_of else None,
            "published_at": self.published_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: Any, *, source: str = "catalogue entry") -> DatasetMetadata:
        """Parse a published entry; every problem is reported with where it is."""
        if not isinstance(data, dict):
            raise CatalogueError(f"{source}: expected a JSON object, got {type(data).__name__}")
        try:
            declaration = DatasetDeclaration.from_json(data, source=source)
            variables = data.get("variables", {})
            if not isinstance(variables, dict):
                raise CatalogueError(f"{source}.variables: expected an object of variable name -> band")
            for name, band in variables.items():
                if name not in VARIABLE_NAMES or band not in AVAILABILITY_ORDER:
                    raise CatalogueError(
                        f"{source}.variables: {name!r}: {band!r} is not a known variable with a band of {list(AVAILABILITY_ORDER)}"
                    )
            size = _text(data, "size", source)
            if not (size in {label for _, label in SIZE_BUCKETS} or (declaration.exact_size_allowed and size.isdigit())):
                raise CatalogueError(f"{source}.size: {size!r} is neither a size bucket nor an exact count the owner allowed")
            return cls(
                hub=_text(data, "hub", source),
                declaration=declaration,
                size=size,
                variables=tuple(VariableAvailability(name, band) for name, band in variables.items()),
                data_as_of=_datetime(data.get("data_as_of"), f"{source}.data_as_of"),
                published_at=_required_datetime(data.get("published_at"), f"{source}.published_at"),
            )
        except CatalogueError:
            raise
        except (TypeError, ValueError) as exc:
            raise CatalogueError(f"{source}: {exc}") from None


def compute_metadata(
    hub: str, declaration: DatasetDeclaration, table: StudyTable, *, data_as_of: datetime | None, published_at: datetime
) -> DatasetMetadata:
    """A hub's catalogue entry for one dataset, from its own study table (all StudyVariables)."""
    size = str(table.n) if declaration.exact_size_allowed else size_bucket(table.n)
    variables = tuple(
        VariableAvailability(name, availability_band(_non_missing_share(table, index)))
        for index, name in enumerate(table.columns)
    )
    return DatasetMetadata(hub, declaration, size, variables, data_as_of, published_at)


def _non_missing_share(table: StudyTable, column: int) -> float:
    if table.n == 0:
        return 0.0
    return float(np.count_nonzero(~np.isnan(table.features[:, column]))) / table.n


@dataclass(frozen=True)
class CatalogueQuery:
    """A search: every word of `text` must occur in the entry's hub, id, title or description
    (case-insensitive), and every variable in `variables` must be available in at least the
    band `min_band` (default: present at all)."""

    text: str = ""
    variables: tuple[str, ...] = ()
    min_band: str = "<50%"
    hubs: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        unknown = [name for name in self.variables if name not in VARIABLE_NAMES]
        if unknown:
            raise CatalogueError(f"unknown variable(s) {unknown} in the search; the study variables are {list(VARIABLE_NAMES)}")
        if self.min_band not in AVAILABILITY_ORDER:
            raise CatalogueError(f"min_band {self.min_band!r} is not one of {list(AVAILABILITY_ORDER)}")


def search(entries: Iterable[DatasetMetadata], query: CatalogueQuery) -> list[DatasetMetadata]:
    """The entries matching `query`, ordered by hub and dataset id."""
    words = query.text.lower().split()
    floor = AVAILABILITY_ORDER.index(query.min_band)
    found = []
    for entry in entries:
        haystack = " ".join((entry.hub, entry.declaration.dataset, entry.declaration.title, entry.declaration.description)).lower()
        if not all(word in haystack for word in words):
            continue
        if query.hubs and entry.hub not in query.hubs:
            continue
        if any(AVAILABILITY_ORDER.index(entry.band_of(name)) < floor for name in query.variables):
            continue
        found.append(entry)
    return sorted(found, key=lambda entry: entry.key)


def _text(data: dict[str, Any], name: str, source: str) -> str:
    value = data.get(name, "")
    if not isinstance(value, str):
        raise CatalogueError(f"{source}.{name}: expected text, got {type(value).__name__}")
    return value


def _date(value: object, where: str) -> date | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise CatalogueError(f"{where}: expected an ISO date (YYYY-MM-DD), got {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CatalogueError(f"{where}: {value!r} is not an ISO date (YYYY-MM-DD)") from None


def _datetime(value: object, where: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise CatalogueError(f"{where}: expected an ISO timestamp, got {value!r}")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise CatalogueError(f"{where}: {value!r} is not an ISO timestamp") from None


def _required_datetime(value: object, where: str) -> datetime:
    found = _datetime(value, where)
    if found is None:
        raise CatalogueError(f"{where}: missing (an ISO timestamp is required)")
    return found

