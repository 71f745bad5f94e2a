"""The shared neural encoder (F-IMSD-13, F-IMSD-1): typed values survive encode/decode exactly
(integers, one-decimal numbers, categories, flags, missing values), with exact and with noisy
(DP) federated quantiles; the quantiles equal those of the pooled rows; conditions become
guidance (known blocks, normal-score intervals) and impossible columns are named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flute.privacy.dp.mechanisms import NoisePlan, NoiseSource
from flute.synth.conditions import parse_conditions
from flute.synth.federated import SynthHub
from flute.synth.neural.encoding import MASS_FLOOR_PER_GRID_POINT, TabularEncoder, learn_encoder
from flute.synth.schema import SchemaError, TableSchema

from .conftest import CENTRES


@pytest.fixture(scope="module")
def exact(hubs: list[SynthHub], schema: TableSchema) -> TabularEncoder:
    return learn_encoder(hubs, schema, sigma=None, plan=NoisePlan.distributed(len(hubs)), round_id="test/exact")


@pytest.fixture(scope="module")
def noisy(hubs: list[SynthHub], schema: TableSchema) -> TabularEncoder:
    return learn_encoder(
        hubs, schema, sigma=30.0, plan=NoisePlan.distributed(len(hubs)), round_id="test/noisy", cells=16,
        noise=lambda: NoiseSource.deterministic_for_tests(1),
    )


def _rows(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(1, 30))
    ages = draw(st.lists(st.one_of(st.none(), st.integers(40, 90)), min_size=n, max_size=n))
    psa = draw(st.lists(st.one_of(st.none(), st.integers(0, 999)), min_size=n, max_size=n))
    pirads = draw(st.lists(st.one_of(st.none(), st.integers(1, 5)), min_size=n, max_size=n))
    return pd.DataFrame(
        {
            "ageAtBiopsy": [np.nan if a is None else float(a) for a in ages],
            "psa": [np.nan if p is None else p / 10 for p in psa],
            "pirads": [np.nan if p is None else float(p) for p in pirads],
            "centre": draw(st.lists(st.sampled_from(CENTRES), min_size=n, max_size=n)),
            "csPCa": draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)),
        }
    )


rows = st.composite(_rows)


@settings(max_examples=60, deadline=None)
@given(frame=rows())
def test_typed_values_survive_encoding_exactly(frame: pd.DataFrame, exact: TabularEncoder, noisy: TabularEncoder, schema: TableSchema) -> None:
    typed = schema.typed_frame({name: frame[name].to_numpy(dtype=object) for name in schema.names})
    for encoder in (exact, noisy):
        matrix = encoder.encode(frame)
        assert matrix.shape == (len(frame), encoder.layout.width)
        pd.testing.assert_frame_equal(encoder.decode(matrix), typed)


def test_exact_quantiles_are_the_pooled_cdf(exact: TabularEncoder, hubs: list[SynthHub]) -> None:
    pooled = pd.concat([hub.frame for hub in hubs])["psa"].dropna().to_numpy()
    quantiles = exact.quantiles[exact.layout.numeric.index("psa")]
    grid_points = quantiles.knots[-1] - quantiles.knots[0]  # PSA: 0.0 .. 99.9, step 0.1
    for value in (2.0, 5.5, 9.9):
        share_below = np.interp(value * 10, quantiles.knots, quantiles.cdf)
        floor_below = MASS_FLOOR_PER_GRID_POINT * value * 10
        assert share_below == pytest.approx((np.sum(pooled < value) + floor_below) / (len(pooled) + MASS_FLOOR_PER_GRID_POINT * grid_points), rel=1e-9)


def test_the_encoder_round_trips_through_json(noisy: TabularEncoder) -> None:
    assert TabularEncoder.from_json(noisy.to_json()) == noisy
    with pytest.raises(SchemaError, match="not a FLUTE tabular encoder|expected format"):
        TabularEncoder.from_json('{"format": "other"}')


def test_conditions_become_guidance(exact: TabularEncoder, schema: TableSchema) -> None:
    guidance = exact.guidance(parse_conditions("cspca=1,age>70,pirads in 4|5", schema))
    layout = exact.layout
    blocks = {block.column: block for block in layout.blocks}
    cspca, age_missing, pirads = blocks["csPCa"], blocks["ageAtBiopsy"], blocks["pirads"]
    assert guidance.known_values[cspca.start : cspca.start + 2].tolist() == [0.0, 1.0]
    assert guidance.known_values[age_missing.start : age_missing.start + 2].tolist() == [1.0, 0.0]  # present
    assert not guidance.known_mask[pirads.start : pirads.start + pirads.size].any()  # two classes allowed
    age = layout.numeric.index("ageAtBiopsy")
    assert np.isfinite(guidance.z_low[age]) and guidance.z_high[age] == pytest.approx(exact.quantiles[age].z_of_position(np.array([910.0]))[0])
    assert exact.decode(np.tile(np.r_[guidance.z_low[age] + 1e-6, np.zeros(layout.width - 1)], (1, 1)))["ageAtBiopsy"].iloc[0] == 71
    assert exact.guidance(parse_conditions("age>95", schema)).impossible == ("ageAtBiopsy",)
