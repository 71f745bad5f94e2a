"""One intercept per hub (`preprocessing.hub_intercepts`): trained federatedly, checked by the spec
and by each hub, packaged as a common model plus each site's log-odds offset, and scored per site
(F-PIL-15, F-PIL-24)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from flute.cohort.table import StudyTable
from flute.cohort.variables import VARIABLE_NAMES
from flute.deploy.artifact import UnknownSite, load_verified
from flute.deploy.cql import cql_library, linear_formula, render_cql
from flute.deploy.keys import KeyPairFiles, load_signing_key, load_trusted_keys
from flute.deploy.scoring import score_units
from flute.deploy.study import package_study_result
from flute.engine.hub_steps import HubRefusal, with_hub_columns
from flute.engine.result import StudyResult
from flute.engine.spec import SpecError, StudySpec
from flute.fhir.readers import document_units

from .conftest import S1, Trained
from .r4b import assert_valid_r4b
from .service_process import running_service
from .study_hubs import HUBS, logistic_spec, run_on_three_hubs


def _spec() -> StudySpec:
    return logistic_spec("hub-intercepts", "csPCa risk with one intercept per hub", hub_intercepts=HUBS)


@pytest.fixture(scope="module")
def study(trained: Trained) -> StudyResult:
    return run_on_three_hubs(trained, _spec())


def _with_hub(features: np.ndarray, hub: str | None) -> np.ndarray:
    indicators = np.zeros((features.shape[0], len(HUBS)))
    if hub is not None:
        indicators[:, HUBS.index(hub)] = 1.0
    return np.hstack([features, indicators])


def test_each_hub_learns_its_own_intercept(study: StudyResult, trained: Trained) -> None:
    """The model has one weight per hub column after the variables' weights; the hubs' rows
    differ in prevalence, so their intercepts differ."""
    model = study.final_model
    assert model.columns[-3:] == ("hub=hub-a", "hub=hub-b", "hub=hub-c")
    np.testing.assert_array_equal(model.preprocessing.means[-3:], 0.0)
    np.testing.assert_array_equal(model.preprocessing.scales[-3:], 1.0)
    hub_weights = model.weights[-3:]
    assert np.ptp(hub_weights) > 1e-3
    parts = np.array_split(np.arange(trained.features.shape[0]), len(HUBS))
    for hub, rows in zip(HUBS, parts):  # calibration in the large at each hub: mean risk = its prevalence
        risks = model.predict(_with_hub(trained.features[rows], hub))
        assert abs(risks.mean() - trained.labels[rows].mean()) < 0.01, hub


def test_packaged_model_scores_each_site_with_its_own_intercept(
    study: StudyResult, trained: Trained, publisher: KeyPairFiles, trust_dir: Path, tmp_path: Path
) -> None:
    path = package_study_result(study, _spec(), tmp_path / "artifact", load_signing_key(publisher.private_key))
    model = load_verified(path, load_trusted_keys(trust_dir))
    assert model.manifest.feature_names == VARIABLE_NAMES
    assert list(model.manifest.site_intercepts) == list(HUBS)
    complete = trained.features[~np.isnan(trained.features).any(axis=1)]
    for hub in HUBS:
        np.testing.assert_allclose(model.for_site(hub).predict(complete), study.final_model.predict(_with_hub(complete, hub)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(model.predict(complete), study.final_model.predict(_with_hub(complete, None)), rtol=0, atol=1e-12)
    with pytest.raises(UnknownSite, match=r"no intercept for site 'elsewhere'; its sites are \['hub-a', 'hub-b', 'hub-c'\]"):
        model.for_site("elsewhere")
    card = (path / "model-card.md").read_text(encoding="utf-8")
    assert "One intercept per training site" in card and "hub-a" in card


def test_cql_library_takes_the_site_as_a_parameter(
    study: StudyResult, trained: Trained, publisher: KeyPairFiles, trust_dir: Path, tmp_path: Path
) -> None:
    """The CQL states each site's offset (read back from the text) and picks it by the `Site`
    parameter; its formula reproduces the site's scores."""
    path = package_study_result(study, _spec(), tmp_path / "artifact", load_signing_key(publisher.private_key))
    model = load_verified(path, load_trusted_keys(trust_dir))
    cql = render_cql(model)
    assert 'parameter "Site" String' in cql and '+ "Site offset"' in cql
    written = {site: float(offset) for site, offset in re.findall(r"when '([^']+)' then (-?\d+\.\d+)", cql)}
    assert written == model.manifest.site_intercepts
    library = cql_library(model)
    assert_valid_r4b(library)
    assert {"name": "Site", "use": "in", "min": 0, "max": "1", "type": "string"} in library["parameter"]
    complete = trained.features[~np.isnan(trained.features).any(axis=1)]
    formula = linear_formula(model)
    for site in (*HUBS, None):
        np.testing.assert_allclose(formula.risk(complete, site), model.for_site(site).predict(complete), rtol=0, atol=1e-12)


def test_score_cli_takes_the_site_and_refuses_an_unknown_one(
    study: StudyResult, publisher: KeyPairFiles, trust_dir: Path, tmp_path: Path
) -> None:
    path = package_study_result(study, _spec(), tmp_path / "artifact", load_signing_key(publisher.private_key))
    if not S1.exists():
        pytest.skip(f"IG example not found at {S1}")
    flute = Path(sys.executable).parent / "flute"

    def score(*site: str) -> subprocess.CompletedProcess[str]:
        command = [str(flute), "score", "run", "--model", str(path), "--trust", str(trust_dir), *site, str(S1)]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    def probability(run: subprocess.CompletedProcess[str]) -> float:
        assert run.returncode == 0, run.stdout + run.stderr
        bundle = json.loads(run.stdout)
        return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "RiskAssessment")["prediction"][0]["probabilityDecimal"]

    common, at_a, at_c = probability(score()), probability(score("--site", "hub-a")), probability(score("--site", "hub-c"))
    assert len({common, at_a, at_c}) == 3
    refused = score("--site", "elsewhere")
    assert refused.returncode == 2 and "no intercept for site 'elsewhere'" in refused.stderr


def test_service_serves_one_site(study: StudyResult, publisher: KeyPairFiles, trust_dir: Path, tmp_path: Path) -> None:
    """`flute score serve --site` scores with that site's intercept and says so in GET /model."""
    path = package_study_result(study, _spec(), tmp_path / "artifact", load_signing_key(publisher.private_key))
    if not S1.exists():
        pytest.skip(f"IG example not found at {S1}")
    with running_service(path, trust_dir, "--site", "hub-b") as url:
        summary = httpx.get(f"{url}/model").json()
        response = httpx.post(f"{url}/score", content=S1.read_bytes(), headers={"Content-Type": "application/fhir+json"}, timeout=60)
    assert summary["site"] == "hub-b" and list(summary["site_intercepts"]) == list(HUBS)
    assert response.status_code == 200, response.text
    local = score_units(document_units(S1.read_bytes(), "local"), load_verified(path, load_trusted_keys(trust_dir)).for_site("hub-b"))
    assessment = next(e["resource"] for e in response.json()["entry"] if e["resource"]["resourceType"] == "RiskAssessment")
    assert assessment["prediction"][0]["probabilityDecimal"] == local.predictions[0].probability


def test_leave_one_hub_out_scores_the_held_out_hub_with_the_common_intercept(trained: Trained) -> None:
    """The held-out hub's own column is all zero in training: accepted (unscaled), its weight
    stays 0 under the penalty, so it is scored as a new site."""
    spec = StudySpec.from_mapping({**json.loads(_spec().to_json()), "evaluation": {"cv_folds": 2, "leave_one_hub_out": True, "score_bins": 2000}})
    result = run_on_three_hubs(trained, spec)
    for outcome in result.of_kind("loho"):
        held_out = HUBS.index(outcome.task.held_out_hub)  # type: ignore[arg-type]
        assert abs(outcome.model.weights[-3:][held_out]) < 1e-9


def test_a_hub_the_spec_does_not_list_refuses() -> None:
    table = StudyTable(VARIABLE_NAMES, np.ones((3, len(VARIABLE_NAMES))), np.array([0, 1, 0]))
    with pytest.raises(HubRefusal, match=r"hub 'hub-z' is not among the study's preprocessing.hub_intercepts"):
        with_hub_columns(_spec(), table, "hub-z")
    own = with_hub_columns(_spec(), table, "hub-b")
    assert own.columns[-3:] == ("hub=hub-a", "hub=hub-b", "hub=hub-c")
    np.testing.assert_array_equal(own.features[:, -3:], [[0, 1, 0]] * 3)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"model": {"name": "linear_svm"}, "strategy": {"name": "fedavg"}}, "hub_intercepts is an option of logistic_regression"),
        ({"model": {"name": "logistic_regression", "l2": 0.0}}, "needs model.l2 > 0"),
        ({"federation": {"min_hubs": 4}}, "exceeds the 3 hubs of preprocessing.hub_intercepts"),
        ({"preprocessing": {"hub_intercepts": ["hub-a"]}}, "at least two hubs"),
        ({"preprocessing": {"hub_intercepts": ["hub-a", "hub-a"]}}, "more than once"),
        ({"preprocessing": {"hub_intercepts": ["hub a", "hub-b"]}}, "are not hub names"),
        ({"pets": {"mode": "secagg"}}, "not supported with pets.mode 'secagg': a hub's intercept column"),
        (
            {
                "cohort": {"variables": ["ageAtBiopsy", "psa"]},
                "preprocessing": {"log_transform": ["psa"], "hub_intercepts": list(HUBS)},
                "strategy": {"name": "clipped_gradient"},
                "pets": {"mode": "secagg_dp", "dp": {"target_epsilon": 1.0, "feature_bounds": {"ageAtBiopsy": [40, 90], "psa": [0.1, 100]}}},
            },
            "not supported with pets.mode 'secagg_dp'",
        ),
    ],
)
def test_spec_refuses_hub_intercepts_that_do_not_fit(change: dict[str, object], reason: str) -> None:
    data = {**json.loads(_spec().to_json()), **change}
    with pytest.raises(SpecError, match=reason):
        StudySpec.from_mapping(data)
