"""SDMetrics' quality score in the synthetic-data fidelity (F-IMSD-3, NF-IMSD-3), computed by the
real sdmetrics 0.32 report on typed tables drawn from a known, correlated distribution."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flute.synth.evaluate import fidelity, sdmetrics_metadata, sdmetrics_quality
from flute.synth.schema import CSPCA, SchemaError, study_schema

VARIABLES = ("ageAtBiopsy", "psa", "prostateVolume", "pirads")
CENTRES = ("A", "B", "C")
SCHEMA = study_schema(VARIABLES, CENTRES)


def correlated_rows(rows: int, seed: int) -> pd.DataFrame:
    """Rows where csPCa drives age, PSA, PI-RADS and the centre (as in PI-CAI), PSA has gaps."""
    rng = np.random.default_rng(seed)
    label = (rng.random(rows) < 0.3).astype(int)
    psa = np.round(np.exp(rng.normal(1.6 + 0.8 * label, 0.5)), 1)
    psa[rng.random(rows) < 0.05] = np.nan
    frame = pd.DataFrame(
        {
            "ageAtBiopsy": np.clip(np.round(rng.normal(62 + 6 * label, 6)), 45, 85).astype(int),
            "psa": psa,
            "prostateVolume": np.round(np.exp(rng.normal(4.0 - 0.3 * label, 0.3)), 1),
            "pirads": np.where(label == 1, rng.choice([4, 5], rows), rng.choice([1, 2, 3, 4], rows, p=[0.1, 0.5, 0.3, 0.1])),
            "centre": np.where(label == 1, rng.choice(CENTRES, rows, p=[0.6, 0.2, 0.2]), rng.choice(CENTRES, rows, p=[0.2, 0.4, 0.4])),
            CSPCA: label,
        }
    )
    return SCHEMA.typed_frame({name: frame[name].to_numpy(dtype=object) for name in SCHEMA.names})


def shuffled_columns(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Every column permuted on its own: the same column shapes, every pair trend destroyed."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({name: frame[name].to_numpy()[rng.permutation(len(frame))] for name in frame.columns}).astype(frame.dtypes.to_dict())


def test_metadata_maps_numeric_kinds_to_numerical_and_the_rest_to_categorical() -> None:
    assert sdmetrics_metadata(SCHEMA) == {
        "columns": {
            "ageAtBiopsy": {"sdtype": "numerical"}, "psa": {"sdtype": "numerical"}, "prostateVolume": {"sdtype": "numerical"},
            "pirads": {"sdtype": "categorical"}, "centre": {"sdtype": "categorical"}, CSPCA: {"sdtype": "categorical"},
        }
    }


def test_a_faithful_sample_scores_high_and_shuffled_columns_score_lower() -> None:
    real = correlated_rows(1500, seed=0)
    faithful = correlated_rows(1500, seed=1)
    shuffled = shuffled_columns(faithful, seed=2)
    good, broken = sdmetrics_quality(SCHEMA, faithful, real), sdmetrics_quality(SCHEMA, shuffled, real)
    assert 0.9 < good <= 1.0
    assert 0.0 <= broken < good - 0.05  # shapes kept, pair trends lost
    assert sdmetrics_quality(SCHEMA, real, real) == pytest.approx(1.0, abs=1e-9)


def test_categories_typed_differently_in_the_two_frames_are_the_same_categories() -> None:
    real = correlated_rows(800, seed=3)
    loose = real.astype({"pirads": "float64", CSPCA: "float64", "centre": "object"})
    assert sdmetrics_quality(SCHEMA, loose, real) == pytest.approx(1.0, abs=1e-9)


def test_fidelity_carries_the_quality_score() -> None:
    real, synthetic = correlated_rows(600, seed=4), correlated_rows(600, seed=5)
    assert fidelity(SCHEMA, synthetic, real).sdm_quality == pytest.approx(sdmetrics_quality(SCHEMA, synthetic, real))


def test_a_category_outside_the_schema_is_refused_naming_the_column() -> None:
    real = correlated_rows(50, seed=6)
    bad = real.astype({"centre": "object"})
    bad.loc[0, "centre"] = "Elsewhere"
    with pytest.raises(SchemaError, match="centre"):
        sdmetrics_quality(SCHEMA, bad, real)
