"""Misuse monitoring rules (NF-PIL-10): pure functions over a hub's history of data uses and
privacy charges, each returning a finding the hub stores as an alert for its data owner.

- differencing: the same fields queried again on a cohort that differs by only a few records.
  The difference of two such aggregates is an aggregate over those few records - the classic
  differencing attack on "safe" counts and sums.
- budget burn: a study spending a large share of its total epsilon within one hour is either
  misconfigured or probing; the owner should look before the budget is gone.
- outside grant: a data use the consent register refused (no grant, or fields not granted).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Final

DIFFERENCING_MAX_RECORDS: Final[int] = 5
DIFFERENCING_WINDOW: Final[timedelta] = timedelta(days=7)
BURN_WINDOW: Final[timedelta] = timedelta(hours=1)
BURN_MAX_SHARE: Final[float] = 0.25


class Rule(str, Enum):
    DIFFERENCING = "differencing"
    BUDGET_BURN = "budget-burn"
    OUTSIDE_GRANT = "outside-grant"


@dataclass(frozen=True)
class DataUse:
    """One use of a dataset on the hub, as the consent register logged it."""

    study: str
    dataset: str
    operation: str
    fields: tuple[str, ...]
    cohort_size: int | None
    allowed: bool
    used_at: datetime


@dataclass(frozen=True)
class Spend:
    """One privacy charge of a study on a dataset (reserved or committed)."""

    at: datetime
    epsilon: float


@dataclass(frozen=True)
class Finding:
    rule: Rule
    study: str
    dataset: str
    message: str


def differencing(
    history: Iterable[DataUse], new: DataUse, *, max_records: int = DIFFERENCING_MAX_RECORDS, window: timedelta = DIFFERENCING_WINDOW
) -> Finding | None:
    """A finding when `new` asks for the same fields as an earlier allowed use of the same dataset
    (by any study) within `window`, on a cohort whose size differs by 1..max_records."""
    if new.cohort_size is None or not new.allowed:
        return None
    for earlier in history:
        if (
            earlier.allowed
            and earlier.dataset == new.dataset
            and earlier.cohort_size is not None
            and set(earlier.fields) == set(new.fields)
            and timedelta(0) <= new.used_at - earlier.used_at <= window
            and 0 < abs(new.cohort_size - earlier.cohort_size) <= max_records
        ):
            gap = abs(new.cohort_size - earlier.cohort_size)
            return Finding(
                Rule.DIFFERENCING, new.study, new.dataset,
                f"study {new.study!r} ran {new.operation!r} on fields {sorted(new.fields)} over {new.cohort_size} records; "
                f"study {earlier.study!r} ran {earlier.operation!r} on the same fields over {earlier.cohort_size} records at "
                f"{earlier.used_at.isoformat(timespec='seconds')}: the two results differ by only {gap} record(s), "
                "which can reveal those records (differencing)",
            )
    return None


def budget_burn(
    spends: Sequence[Spend], epsilon_total: float, now: datetime, *, study: str, dataset: str,
    window: timedelta = BURN_WINDOW, max_share: float = BURN_MAX_SHARE,
) -> Finding | None:
    """A finding when the charges of the last `window` exceed `max_share` of the total epsilon."""
    if epsilon_total <= 0:
        return None
    recent = sum(spend.epsilon for spend in spends if timedelta(0) <= now - spend.at <= window)
    share = recent / epsilon_total
    if share <= max_share:
        return None
    return Finding(
        Rule.BUDGET_BURN, study, dataset,
        f"study {study!r} spent epsilon {recent:.4g} on dataset {dataset!r} within {window}, {share:.0%} of its total "
        f"{epsilon_total:.4g} (alert threshold {max_share:.0%} per {window})",
    )


def outside_grant(use: DataUse, reason: str) -> Finding:
    return Finding(
        Rule.OUTSIDE_GRANT, use.study, use.dataset,
        f"study {use.study!r} tried {use.operation!r} on fields {sorted(use.fields)} of dataset {use.dataset!r} outside its grant: {reason}",
    )
