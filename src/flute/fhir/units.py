"""Unit harmonisation of incoming quantities (NF-PIL-1, F-IMSD-9).

Hospitals report PSA as ng/mL, ug/L or ng/dL and prostate volume as mL, cm3 or cc; the model
stores one canonical unit per variable. Each accepted unit has an exact decimal factor, so a
conversion never introduces binary floating-point noise (455 ng/dL is 4.55 ng/mL, not
4.550000000000001).

Rounding: the IG's invariant rule-1 allows at most one decimal for PSA and prostate volume.
Harmonised values are rounded to one decimal, half away from zero (4.55 -> 4.6, the
convention of clinical laboratories), after conversion. Ages are integer years: a
performedAge of 54.9 a is 54 completed years.

The unit of a Quantity is its UCUM `code`; a Quantity that carries only the human-readable
`unit` (as the IG's own questionnaire extraction does) is read by that text instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Final, Mapping


@dataclass(frozen=True)
class UnitTable:
    """The units accepted for one measured variable and their factors to the canonical unit."""

    variable: str
    canonical: str
    factors: Mapping[str, Decimal]
    decimals: int  # decimals kept after harmonisation (0 = integer, floored)

    def accepts(self, unit: str) -> bool:
        return unit in self.factors

    def describe(self) -> str:
        """The accepted units in words, for error messages."""
        names = list({unit.lower(): unit for unit in reversed(list(self.factors))}.values())[::-1]
        return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]

    def convert(self, value: float | int, unit: str) -> float:
        """`value` of an accepted `unit` in the canonical unit, unrounded (for range checks)."""
        try:
            return float(value) * float(self.factors[unit])
        except OverflowError:  # an integer beyond float range
            return math.inf if value > 0 else -math.inf

    def harmonise(self, value: float | int, unit: str) -> float | int | None:
        """`value` in `unit` expressed in the canonical unit and rounded; None for a unit
        outside the table. Non-finite or absurdly large values come back unrounded (as
        float), for the range check to reject."""
        factor = self.factors.get(unit)
        if factor is None:
            return None
        return _scaled(repr(value), factor, self.decimals)


@lru_cache(maxsize=4096)
def _scaled(value: str, factor: Decimal, decimals: int) -> float | int:
    """`UnitTable.harmonise` of a value written as `value`, by exact decimal arithmetic.
    Memoised (on the value's repr, which is what the arithmetic reads): measurements repeat
    (one decimal, a plausible range), and the decimal arithmetic costs more than the rest of
    extracting a record."""
    exact = Decimal(value) * factor
    try:
        if decimals == 0:
            return int(exact.to_integral_value(rounding=ROUND_FLOOR))
        return float(exact.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP))
    except (InvalidOperation, OverflowError, ValueError):
        return float(exact)


_ONE: Final = Decimal(1)

PSA_UNITS: Final = UnitTable(
    "PSA",
    "ng/mL",
    {"ng/mL": _ONE, "ng/ml": _ONE, "ug/L": _ONE, "ug/l": _ONE, "ng/dL": Decimal("0.01"), "ng/dl": Decimal("0.01")},
    decimals=1,
)
VOLUME_UNITS: Final = UnitTable(
    "prostate volume",
    "mL",
    {"mL": _ONE, "ml": _ONE, "cm3": _ONE, "cc": _ONE},
    decimals=1,
)
AGE_UNITS: Final = UnitTable("age", "a", {"a": _ONE}, decimals=0)


def quantity_unit(quantity: Mapping[str, Any]) -> str | None:
    """The unit a Quantity is expressed in: its UCUM `code`, else its `unit` text."""
    code = quantity.get("code")
    if isinstance(code, str):
        return code
    unit = quantity.get("unit")
    return unit if isinstance(unit, str) else None


def is_number(value: object) -> bool:
    """A JSON number (bool is an int subclass in Python but not a number in JSON)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def has_at_most_one_decimal(value: float | int) -> bool:
    """IG invariant rule-1 on the value as sent."""
    return isinstance(value, int) or value == round(value, 1)
