"""Unit harmonisation (NF-PIL-1, F-IMSD-9): exact factors, one-decimal half-up rounding,
integer years, and refusal of anything else."""

from __future__ import annotations

import pytest

from flute.fhir.units import AGE_UNITS, PSA_UNITS, VOLUME_UNITS, UnitTable, has_at_most_one_decimal, is_number, quantity_unit


@pytest.mark.parametrize(
    "table, value, unit, expected",
    [
        (PSA_UNITS, 5, "ng/mL", 5.0),
        (PSA_UNITS, 5, "ug/L", 5.0),
        (PSA_UNITS, 450, "ng/dL", 4.5),
        (PSA_UNITS, 455, "ng/dL", 4.6),  # exact decimal arithmetic, then half-up
        (PSA_UNITS, 4.25, "ng/mL", 4.3),
        (PSA_UNITS, 0.04, "ng/mL", 0.0),
        (VOLUME_UNITS, 30, "cm3", 30.0),
        (VOLUME_UNITS, 30.05, "cc", 30.1),
        (VOLUME_UNITS, 30, "mL", 30.0),
        (AGE_UNITS, 54.9, "a", 54),  # completed years
    ],
)
def test_accepted_units_harmonise(table: UnitTable, value: float, unit: str, expected: float | int) -> None:
    result = table.harmonise(value, unit)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize("table, unit", [(PSA_UNITS, "mg/L"), (PSA_UNITS, "ng"), (VOLUME_UNITS, "L"), (AGE_UNITS, "mo"), (AGE_UNITS, "yr")])
def test_other_units_are_refused(table: UnitTable, unit: str) -> None:
    assert not table.accepts(unit) and table.harmonise(1, unit) is None


def test_quantity_reading_helpers() -> None:
    assert quantity_unit({"code": "ng/mL", "unit": "ng/ml"}) == "ng/mL"
    assert quantity_unit({"unit": "cc"}) == "cc"
    assert quantity_unit({"code": 3}) is None
    assert [is_number(v) for v in (1, 1.5, True, "1", None)] == [True, True, False, False, False]
    assert [has_at_most_one_decimal(v) for v in (4, 4.2, 4.25, 0.1)] == [True, True, False, True]
    assert PSA_UNITS.describe() == "ng/mL, ug/L or ng/dL" and VOLUME_UNITS.describe() == "mL, cm3 or cc"
