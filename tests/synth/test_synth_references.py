"""The benchmark's centralised reference synthesizers (real SDV 2.0 and smartnoise MST) hand back
rows typed by our schema, so they are scored exactly like FLUTE's generators (F-IMSD-3)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from flute.synth.references import ReferenceSampler, fit_gaussian_copula, fit_mst, fit_tvae, references
from flute.synth.schema import CSPCA, TableSchema

from .test_synth_evaluate_sdmetrics import SCHEMA, correlated_rows


def assert_schema_typed(frame: pd.DataFrame, rows: int, schema: TableSchema) -> None:
    assert list(frame.columns) == list(schema.names) and len(frame) == rows
    retyped = schema.typed_frame({name: frame[name].to_numpy(dtype=object) for name in schema.names})
    assert frame.dtypes.to_dict() == retyped.dtypes.to_dict()
    schema.discretise(frame)  # every value is a declared category or a number (missing only where allowed)
    ages = frame["ageAtBiopsy"].dropna().to_numpy(dtype=np.float64)
    assert np.array_equal(ages, np.round(ages))
    psa = frame["psa"].dropna().to_numpy()
    assert np.allclose(psa * 10, np.round(psa * 10))
    assert set(frame[CSPCA].dropna().astype(int)) <= {0, 1}


def test_the_references_are_keyed_as_the_issue_names_them() -> None:
    assert [r.key for r in references()] == ["sdv_gaussiancopula", "sdv_tvae", "mst_eps1"]
    assert [r.key for r in references(mst_epsilon=0.5)][-1] == "mst_eps0_5"


@pytest.mark.parametrize("fit", [fit_gaussian_copula, lambda schema, train: fit_tvae(schema, train, epochs=2)], ids=["gaussiancopula", "tvae"])
def test_sdv_references_sample_schema_typed_rows(fit: Callable[[TableSchema, pd.DataFrame], ReferenceSampler]) -> None:
    sampler = fit(SCHEMA, correlated_rows(400, seed=0))
    assert_schema_typed(sampler.sample(250, np.random.default_rng(0)), 250, SCHEMA)


@pytest.mark.slow
def test_mst_samples_schema_typed_rows_decoded_from_the_public_bins() -> None:
    train = correlated_rows(600, seed=1)
    train = train[train["centre"] != "C"].reset_index(drop=True)  # a declared category absent from the data
    sampler = fit_mst(SCHEMA, train, epsilon=3.0)
    frame = sampler.sample(300, np.random.default_rng(1))
    assert_schema_typed(frame, 300, SCHEMA)
    # decoded within the public bins: every numeric value lies inside the schema's outer edges
    for name in ("ageAtBiopsy", "psa", "prostateVolume"):
        edges = SCHEMA.column(name).edges
        values = frame[name].dropna().to_numpy(dtype=np.float64)
        assert values.min() >= edges[0] and values.max() < edges[-1]
