"""Per-variable feature transforms from the study spec to the bedside: PI-RADS as categories and
log PSA / volume, declared once in the spec, applied by every hub, stated in the manifest,
reproduced by the packaged artifact at scoring time and written into the CQL (F-PIL-24,
F-STD-10). A model that scores differently anywhere along this path would be a different model."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from flute.cohort.variables import PIRADS, VARIABLE_NAMES
from flute.deploy.artifact import ScoringModel, load_verified
from flute.deploy.cql import render_cql
from flute.deploy.errors import ManifestInvalid
from flute.deploy.keys import KeyPairFiles, load_signing_key, load_trusted_keys
from flute.deploy.scoring import score_units
from flute.engine.hub_steps import study_standardiser
from flute.engine.result import StudyResult
from flute.fhir.readers import iter_units

from .conftest import LOG_COLUMNS, S1, Trained, resign_manifest
from .study_hubs import logistic_spec, run_on_three_hubs
from .test_model_cql import formula_from_cql
from .test_score_fhir import S1_ROW

INPUTS = ("ageAtBiopsy", "pcaFamilyHistory", "typeOfBiopsy", "psa", "dre", "prostateVolume", "pirads=2", "pirads=3", "pirads=4", "pirads=5")
SPEC = logistic_spec("transforms-study", "csPCa risk with PI-RADS categories", categories=[PIRADS])


@pytest.fixture(scope="module")
def study(trained: Trained) -> StudyResult:
    return run_on_three_hubs(trained, SPEC)


@pytest.fixture(scope="module")
def packaged(study: StudyResult, publisher: KeyPairFiles, trust_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ScoringModel:
    from flute.deploy.study import package_study_result

    out = tmp_path_factory.mktemp("transforms") / "model"
    path = package_study_result(study, SPEC, out, load_signing_key(publisher.private_key), allow_imputation=True)
    return load_verified(path, load_trusted_keys(trust_dir))


def test_spec_declares_the_model_inputs() -> None:
    assert SPEC.model_inputs == INPUTS


def test_hub_design_equals_the_indicators_of_pirads(study: StudyResult, trained: Trained) -> None:
    """What a hub feeds the model: one 0/1 column per PI-RADS 2..5, standardised with the
    federated means and scales; PI-RADS 1 is the reference (all indicators at their minimum)."""
    preprocessing = study.final_model.preprocessing
    design = study_standardiser(SPEC, preprocessing).transform(trained.features)
    assert design.shape == (trained.features.shape[0], len(INPUTS))
    pirads = trained.features[:, VARIABLE_NAMES.index(PIRADS)]
    for offset, level in enumerate((2, 3, 4, 5)):
        column = INPUTS.index(f"pirads={level}")
        observed = ~np.isnan(pirads)
        indicator = design[observed, column] * preprocessing.scales[column] + preprocessing.means[column]
        np.testing.assert_allclose(indicator, (pirads[observed] == level).astype(float), atol=1e-12)
        assert offset + 6 == column


def test_study_to_artifact_to_scoring_gives_the_same_risk(study: StudyResult, packaged: ScoringModel, trained: Trained) -> None:
    prep = packaged.manifest.preprocessing
    assert prep.categories == {PIRADS: (1.0, 2.0, 3.0, 4.0, 5.0)} and prep.log_transform == LOG_COLUMNS
    assert len(prep.means) == len(INPUTS) and packaged.predictor.coefficients.shape == (len(INPUTS),)
    np.testing.assert_allclose(packaged.predict(trained.features), study.final_model.predict(trained.features), rtol=0, atol=1e-12)
    restored = StudyResult.from_record(study.to_record()).final_model
    np.testing.assert_allclose(restored.predict(trained.features), study.final_model.predict(trained.features), rtol=0, atol=0)
    report = score_units(iter_units([S1]), packaged)
    assert not report.failed
    assert abs(report.predictions[0].probability - float(study.final_model.predict(S1_ROW)[0])) < 1e-12


def test_cql_of_a_categorical_pirads_model_gives_the_models_risk(packaged: ScoringModel, trained: Trained) -> None:
    cql = render_cql(packaged)
    assert 'define "pirads=4 input"' in cql and 'define "pirads input"' not in cql
    assert 'if "pirads" is null then null else if "pirads" = 4 then 1.0 else 0.0' in cql
    formula = formula_from_cql(cql, packaged)
    assert [t.level for t in formula.terms] == [None] * 6 + [2.0, 3.0, 4.0, 5.0]
    np.testing.assert_allclose(formula.risk(S1_ROW), packaged.predict(S1_ROW), rtol=0, atol=1e-12)
    np.testing.assert_allclose(formula.risk(trained.features), packaged.predict(trained.features), rtol=0, atol=1e-12)
    for level in (1, 2, 3, 4, 5):  # every category, also the reference level
        row = S1_ROW.copy()
        row[0, VARIABLE_NAMES.index(PIRADS)] = level
        np.testing.assert_allclose(formula.risk(row), packaged.predict(row), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("categories", "reason"),
    [
        ({PIRADS: [1, 2, 3]}, "preprocessing.means has 10 values for 8 model inputs"),
        ({"gleason": [1, 2]}, "preprocessing.categories names ['gleason'], which are not features"),
        ({"psa": [1, 2, 3, 4, 5]}, "['psa'] are both log-transformed and categorical"),
    ],
)
def test_a_manifest_whose_categories_do_not_fit_its_inputs_is_refused(
    packaged: ScoringModel, publisher: KeyPairFiles, trust_dir: Path, tmp_path: Path, categories: dict[str, list[int]], reason: str
) -> None:
    assert packaged.source is not None
    path = Path(shutil.copytree(packaged.source, tmp_path / "model"))
    resign_manifest(path, lambda document: document["preprocessing"].update(categories=categories), publisher)
    with pytest.raises(ManifestInvalid) as refused:
        load_verified(path, load_trusted_keys(trust_dir))
    assert any(reason in r for r in refused.value.reasons), refused.value.reasons


def test_a_pirads_value_outside_its_levels_is_refused_not_counted_as_reference(packaged: ScoringModel) -> None:
    from flute.learn.preprocess import PreprocessingError

    row = S1_ROW.copy()
    row[0, VARIABLE_NAMES.index(PIRADS)] = 6
    with pytest.raises(PreprocessingError, match="outside its category levels"):
        packaged.predict(row)
