"""The logistic model as a FHIR Library with CQL (F-STD-10): the numbers written in the CQL,
read back from the text alone, reproduce the artifact's probabilities."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pytest

from flute.cohort.variables import VARIABLE_NAMES
from flute.deploy.artifact import ScoringModel, load_verified
from flute.deploy.cql import LinearRiskFormula, LinearTerm, cql_decimal, cql_library, render_cql
from flute.deploy.keys import KeyPairFiles, load_trusted_keys
from flute.learn.preprocess import design_columns

from .conftest import Trained, make_artifact
from .r4b import assert_valid_r4b

NUMBER = r"(-?\d+\.\d+)"


def formula_from_cql(cql: str, model: ScoringModel) -> LinearRiskFormula:
    """Parse the standardised inputs and the linear predictor back out of the CQL text; only the
    input names come from the model, every number (and indicator level) from the text."""
    terms = []
    inputs = design_columns(model.columns, model.manifest.preprocessing.categories)
    for name in inputs:
        block = re.search(rf'define "{re.escape(name)} input":\n  \((.+) - \({NUMBER}\)\) / {NUMBER}\n', cql)
        assert block is not None, f"no input definition for {name}"
        value, mean, scale = block.group(1), float(block.group(2)), float(block.group(3))
        imputed = re.fullmatch(rf"Coalesce\((.+), {NUMBER}\)", value)
        inner = imputed.group(1) if imputed else value
        variable = name.split("=")[0]
        indicator = re.fullmatch(rf'\(if "{variable}" is null then null else if "{variable}" = (\d+) then 1.0 else 0.0\)', inner)
        coefficient = re.search(rf'\+ \({NUMBER}\) \* "{re.escape(name)} input"', cql)
        assert coefficient is not None
        terms.append(
            LinearTerm(
                name, variable, model.columns.index(variable), inner == f'Ln("{variable}")', float(indicator.group(1)) if indicator else None,
                mean, scale, float(coefficient.group(1)), float(imputed.group(2)) if imputed else None,
            )
        )  # fmt: skip
    intercept = re.search(rf'define "Linear predictor":\n  \({NUMBER}\)\n', cql)
    assert intercept is not None
    return LinearRiskFormula(float(intercept.group(1)), tuple(terms))


@pytest.mark.parametrize("allow_imputation", [False, True])
def test_cql_coefficients_reproduce_the_model(
    allow_imputation: bool, trained: Trained, publisher: KeyPairFiles, trust_dir: Path, tmp_path: Path
) -> None:
    model = load_verified(make_artifact(trained, publisher, tmp_path / "m", allow_imputation=allow_imputation), load_trusted_keys(trust_dir))
    formula = formula_from_cql(render_cql(model), model)
    assert [t.log for t in formula.terms] == [name in ("psa", "prostateVolume") for name in VARIABLE_NAMES]
    features = trained.features if allow_imputation else trained.features[~np.isnan(trained.features).any(axis=1)]
    np.testing.assert_allclose(formula.risk(features), model.predict(features), rtol=0, atol=1e-12)


def test_library_resource_is_valid_r4_and_carries_the_cql(artifact: Path, trust_dir: Path) -> None:
    model = load_verified(artifact, load_trusted_keys(trust_dir))
    library = cql_library(model)
    assert_valid_r4b(library)
    assert library["type"]["coding"][0]["code"] == "logic-library"
    assert library["version"] == "1.2.0" and library["name"] == "FluteCspcaTest"
    content = library["content"][0]
    assert content["contentType"] == "text/cql"
    cql = base64.b64decode(content["data"]).decode()
    assert cql == render_cql(model)
    assert cql.startswith("library FluteCspcaTest version '1.2.0'") and "parameter \"Decision threshold\" Decimal default 0.15" in cql


@pytest.mark.parametrize(("value", "text"), [(1e-05, "0.00001"), (-2.5e-10, "-0.00000000025"), (3.0, "3.0"), (123456.75, "123456.75")])
def test_cql_decimals_have_no_exponent_and_round_trip(value: float, text: str) -> None:
    assert cql_decimal(value) == text
    assert float(cql_decimal(value)) == value
