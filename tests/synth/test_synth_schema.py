"""The public discretisation and its typed decoding (F-IMSD-1, F-IMSD-13): codes survive a
decode/encode round trip exactly, decoded values are typed, bad input is refused by name."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flute.synth.schema import PUBLIC_EDGES, Column, ColumnKind, SchemaError, TableSchema, study_schema

SCHEMA = study_schema(("ageAtBiopsy", "psa", "prostateVolume", "pirads", "dre"), ("north", "south"))


@st.composite
def code_matrices(draw: st.DrawFn) -> np.ndarray:
    rows = draw(st.integers(1, 40))
    return np.column_stack([draw(st.lists(st.integers(0, card - 1), min_size=rows, max_size=rows)) for card in SCHEMA.cardinalities])


@settings(max_examples=60, deadline=None)
@given(code_matrices(), st.integers(0, 2**32 - 1))
def test_decoded_codes_are_typed_and_encode_back_exactly(codes: np.ndarray, seed: int) -> None:
    frame = SCHEMA.decode(codes, np.random.default_rng(seed))
    np.testing.assert_array_equal(SCHEMA.discretise(frame), codes)
    assert str(frame["ageAtBiopsy"].dtype) == "Int64" and str(frame["pirads"].dtype) == "Int64" and str(frame["csPCa"].dtype) == "Int64"
    psa = frame["psa"].dropna().to_numpy()
    np.testing.assert_array_equal(np.round(psa * 10), psa * 10 if len(psa) else psa)  # one decimal place
    missing = codes[:, SCHEMA.index("psa")] == SCHEMA.column("psa").missing_code
    np.testing.assert_array_equal(frame["psa"].isna().to_numpy(), missing)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(40, 90)), min_size=1, max_size=30), st.lists(st.one_of(st.none(), st.integers(0, 999)), min_size=1, max_size=30))
def test_typed_values_inside_the_bounds_keep_their_bin(ages: list[int | None], tenths: list[int | None]) -> None:
    n = min(len(ages), len(tenths))
    age = Column("ageAtBiopsy", ColumnKind.INTEGER, edges=PUBLIC_EDGES["ageAtBiopsy"], allow_missing=True)
    psa = Column("psa", ColumnKind.DECIMAL1, edges=PUBLIC_EDGES["psa"], allow_missing=True)
    for column, values in ((age, [np.nan if a is None else float(a) for a in ages[:n]]), (psa, [np.nan if t is None else t / 10 for t in tenths[:n]])):
        codes = column.encode(np.array(values))
        decoded = column.decode(codes, np.random.default_rng(0))
        np.testing.assert_array_equal(column.encode(decoded), codes)
        for value, code in zip(values, codes):
            if np.isnan(value):
                assert code == column.missing_code
            else:
                low, high = column.grid_bounds()[code]
                assert low <= round(value * column.kind.grid_per_unit) < high


def test_values_outside_the_public_bounds_are_clamped_not_lost() -> None:
    age = SCHEMA.column("ageAtBiopsy")
    assert age.encode(np.array([18.0, 110.0])).tolist() == [0, len(age.edges) - 2]


def test_bad_values_are_refused_naming_the_column() -> None:
    frame = pd.DataFrame({name: [1] for name in SCHEMA.names} | {"centre": ["west"], "psa": [1.0], "ageAtBiopsy": [60]})
    with pytest.raises(SchemaError, match=r"column 'centre': value\(s\) \['west'\] are not among the declared categories"):
        SCHEMA.discretise(frame)
    with pytest.raises(SchemaError, match="column 'csPCa' has 1 missing value"):
        SCHEMA.discretise(frame.assign(centre="north", csPCa=None))
    with pytest.raises(SchemaError, match="lacks column"):
        SCHEMA.discretise(frame.drop(columns="pirads"))
    with pytest.raises(SchemaError, match="not on the decimal1 grid"):
        Column("x", ColumnKind.DECIMAL1, edges=(0.0, 0.05, 1.0))


def test_schema_json_round_trip() -> None:
    assert TableSchema.from_json(SCHEMA.to_json()) == SCHEMA
    with pytest.raises(SchemaError, match="expected a JSON object with format"):
        TableSchema.from_json("{}")


@settings(max_examples=40, deadline=None)
@given(code_matrices(), st.integers(0, 2**32 - 1))
def test_csv_and_schema_round_trip_the_typed_table(tmp_path_factory: pytest.TempPathFactory, codes: np.ndarray, seed: int) -> None:
    from flute.synth.io import read_table, write_table

    frame = SCHEMA.decode(codes, np.random.default_rng(seed))
    csv = tmp_path_factory.mktemp("csv") / "table.csv"
    write_table(frame, SCHEMA, csv)
    loaded, schema = read_table(csv)
    assert schema == SCHEMA
    pd.testing.assert_frame_equal(loaded, frame)
