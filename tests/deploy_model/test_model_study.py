"""From a real federated study (embedded engine, three hubs) to a signed artifact: the path the
demo and `flute model package` take (F-PIL-24)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from flute.cli.main import app
from flute.deploy.artifact import load_verified
from flute.deploy.keys import KeyPairFiles, load_signing_key, load_trusted_keys
from flute.deploy.study import package_study_result
from flute.engine.flower import record_to_bytes
from flute.engine.result import StudyResult
from flute.engine.spec import StudySpec

from .conftest import Trained
from .study_hubs import HUBS, logistic_spec, run_on_three_hubs

def _spec(study_id: str = "deploy-study") -> StudySpec:
    return logistic_spec(study_id, "csPCa risk, deployment test")


@pytest.fixture(scope="module")
def study(trained: Trained) -> StudyResult:
    return run_on_three_hubs(trained, _spec())


def test_study_result_packages_into_a_verified_model(
    study: StudyResult, trained: Trained, publisher: KeyPairFiles, trust_dir: Path, tmp_path: Path
) -> None:
    path = package_study_result(study, _spec(), tmp_path / "artifact", load_signing_key(publisher.private_key), version="2.0.0")
    model = load_verified(path, load_trusted_keys(trust_dir))
    complete = trained.features[~np.isnan(trained.features).any(axis=1)]
    np.testing.assert_allclose(model.predict(complete), study.final_model.predict(complete), rtol=0, atol=1e-12)
    manifest = model.manifest
    assert manifest.model.model_id == "deploy-study" and manifest.model.version == "2.0.0"
    assert manifest.provenance.hubs == HUBS and manifest.provenance.rounds == study.final_model.rounds
    assert manifest.provenance.spec_sha256 == hashlib.sha256(_spec().to_json().encode()).hexdigest()
    assert manifest.privacy.pets == () and manifest.privacy.epsilon is None
    assert manifest.validation is not None
    assert manifest.validation.n == trained.features.shape[0] and manifest.validation.events == int(trained.labels.sum())
    assert 0.6 < manifest.validation.auroc < 1.0 and manifest.validation.net_benefit_threshold == 0.15


def test_packaging_with_another_spec_is_refused(study: StudyResult, publisher: KeyPairFiles, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="with another spec"):
        package_study_result(study, _spec("other-study"), tmp_path / "artifact", load_signing_key(publisher.private_key))


def test_cli_packages_a_stored_result(study: StudyResult, publisher: KeyPairFiles, trust_dir: Path, tmp_path: Path) -> None:
    stored = tmp_path / "result.flute"
    stored.write_bytes(record_to_bytes(study.to_record()))
    runner = CliRunner()
    packaged = runner.invoke(app, ["model", "package", "--result", str(stored), "--key", str(publisher.private_key), "--out", str(tmp_path / "a"), "--version", "1.0.1"])
    assert packaged.exit_code == 0, packaged.output
    verified = runner.invoke(app, ["model", "verify", str(tmp_path / "a"), "--trust", str(trust_dir)])
    assert verified.exit_code == 0 and "deploy-study 1.0.1" in verified.output
