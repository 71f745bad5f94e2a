"""Every model of the zoo is packaged as a signed artifact (safetensors + manifest, no pickle),
verified, and scored as FHIR RiskAssessments exactly like the in-memory model; tampering is
refused; only logistic regression is exported as CQL (F-PIL-23, F-PIL-24, F-STD-7, F-STD-10)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from flute.cli.main import app
from flute.deploy.artifact import load_verified, package_model
from flute.deploy.cql import NotExpressibleInCql, cql_library
from flute.deploy.errors import ArtifactError, BadSignature, TamperedArtifact
from flute.deploy.families import ArchitectureError
from flute.deploy.keys import KeyPairFiles, load_signing_key, load_trusted_keys
from flute.learn.federated_estimators import FederatedLinearSvm, FederatedMlp, FederatedTreeClassifier
from flute.learn.mlp import MlpParams
from flute.learn.svm import LinearSvmParams
from flute.learn.tree import Tree
from flute.learn.tree_models import BoostingParams, DecisionTreeParams, RandomForestParams, TreeEnsemble

from .conftest import METRICS, PROVENANCE, S1, Trained, resign_manifest
from .r4b import assert_valid_r4b

ESTIMATORS: dict[str, Callable[[], Any]] = {
    "decision_tree": lambda: FederatedTreeClassifier(DecisionTreeParams(max_depth=4, min_rows_leaf=20)),
    "random_forest": lambda: FederatedTreeClassifier(RandomForestParams(n_trees=6, max_depth=3, min_rows_leaf=20), seed=3),
    "gbdt": lambda: FederatedTreeClassifier(BoostingParams(n_trees=12, max_depth=2, learning_rate=0.2)),
    "linear_svm": lambda: FederatedLinearSvm(LinearSvmParams(loss="squared_hinge", l2=0.01), max_rounds=40, local_epochs=2, learning_rate=0.5),
    "mlp": lambda: FederatedMlp(MlpParams(hidden_units=3, l2=0.01, activation="tanh"), max_rounds=40, local_epochs=2, learning_rate=0.5, seed=1),
}
ARCHITECTURE_KEYS = {"decision_tree": {"n_trees", "n_nodes"}, "random_forest": {"n_trees", "n_nodes"}, "gbdt": {"n_trees", "n_nodes"}, "linear_svm": set(), "mlp": {"activation", "hidden_units"}}


@pytest.fixture(scope="module")
def fitted(trained: Trained) -> dict[str, Any]:
    inputs = trained.standardiser.transform(trained.features)
    return {name: make().fit(inputs, trained.labels) for name, make in ESTIMATORS.items()}


@pytest.fixture(scope="module")
def artifacts(fitted: dict[str, Any], trained: Trained, publisher: KeyPairFiles, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root, key = tmp_path_factory.mktemp("zoo"), load_signing_key(publisher.private_key)
    return {
        name: package_model(estimator.model_, trained.standardiser, PROVENANCE, METRICS, root / name, key, model_type=name, allow_imputation=True)
        for name, estimator in fitted.items()
    }


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_each_family_round_trips_with_identical_scores(name: str, artifacts: dict[str, Path], fitted: dict[str, Any], trained: Trained, trust_dir: Path) -> None:
    model = load_verified(artifacts[name], load_trusted_keys(trust_dir))
    manifest = model.manifest
    assert manifest.model.model_type == name
    assert set(manifest.model.architecture) == ARCHITECTURE_KEYS[name]
    assert manifest.model.fhir_library is False
    assert sorted(p.name for p in artifacts[name].iterdir()) == ["manifest.json", "model-card.md", "signature.json", "weights.safetensors"]
    expected = fitted[name].predict_proba(trained.standardiser.transform(trained.features))[:, 1]
    np.testing.assert_array_equal(model.predict(trained.features), expected)
    assert np.unique(expected).size > 2  # a real, non-constant model


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_verify_and_score_run_on_the_ig_example(name: str, artifacts: dict[str, Path], fitted: dict[str, Any], trained: Trained, trust_dir: Path) -> None:
    runner = CliRunner()
    verified = runner.invoke(app, ["model", "verify", str(artifacts[name]), "--trust", str(trust_dir)])
    assert verified.exit_code == 0, verified.output
    assert f"({name})" in verified.output
    scored = runner.invoke(app, ["score", "run", "--model", str(artifacts[name]), "--trust", str(trust_dir), str(S1)])
    assert scored.exit_code == 0, scored.output
    bundle = json.loads(scored.stdout)
    assert_valid_r4b(bundle)
    prediction = bundle["entry"][0]["resource"]["prediction"][0]
    s1_row = np.array([[54, 1, 2, 5.0, 1, 30.0, 3]], dtype=np.float64)  # EXP-S1's seven variables
    assert prediction["probabilityDecimal"] == pytest.approx(float(fitted[name].predict_proba(trained.standardiser.transform(s1_row))[0, 1]), abs=1e-15)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_only_logistic_models_export_cql_and_the_card_says_so(name: str, artifacts: dict[str, Path], trust_dir: Path) -> None:
    model = load_verified(artifacts[name], load_trusted_keys(trust_dir))
    with pytest.raises(NotExpressibleInCql, match=f"'{name}' cannot be exported as CQL"):
        cql_library(model)
    card = (artifacts[name] / "model-card.md").read_text(encoding="utf-8")
    assert f"No FHIR Library / CQL export: a {name} model is not a closed-form formula" in card


def test_the_logistic_model_declares_its_fhir_library(artifact: Path, trust_dir: Path) -> None:
    model = load_verified(artifact, load_trusted_keys(trust_dir))
    assert model.manifest.model.fhir_library is True and model.manifest.model.architecture == {}
    assert "also published as a FHIR Library with CQL" in (artifact / "model-card.md").read_text(encoding="utf-8")


def _copy(artifacts: dict[str, Path], name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(artifacts[name], tmp_path / name))


def _flip_first_weight(path: Path) -> None:
    data = bytearray((path / "weights.safetensors").read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")
    data[header + 7] ^= 0x40  # sign/exponent byte of the first float64
    (path / "weights.safetensors").write_bytes(bytes(data))


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_tampered_weights_or_architecture_are_refused(name: str, artifacts: dict[str, Path], trust_dir: Path, tmp_path: Path) -> None:
    weights = _copy(artifacts, name, tmp_path / "w")
    _flip_first_weight(weights)
    with pytest.raises(TamperedArtifact, match="weights.safetensors: SHA-256"):
        load_verified(weights, load_trusted_keys(trust_dir))
    refused = CliRunner().invoke(app, ["model", "verify", str(weights), "--trust", str(trust_dir)])
    assert refused.exit_code == 1
    manifest = _copy(artifacts, name, tmp_path / "m")
    document = json.loads((manifest / "manifest.json").read_text())
    document["model"]["architecture"] = {**document["model"]["architecture"], "n_trees": 99}
    (manifest / "manifest.json").write_text(json.dumps(document))
    with pytest.raises(BadSignature):
        load_verified(manifest, load_trusted_keys(trust_dir))


@pytest.mark.parametrize(
    ("name", "architecture", "message"),
    [
        ("gbdt", {"n_trees": 12, "n_nodes": 1}, "holds tensors|declares tensors"),
        ("mlp", {"hidden_units": 3, "activation": "sigmoid"}, "activation must be one of"),
        ("mlp", {"hidden_units": 3}, "architecture entries"),
        ("linear_svm", {"depth": 2}, "has no architecture entries"),
        ("decision_tree", {"n_trees": 2, "n_nodes": 9}, "exactly one tree"),
    ],
)
def test_a_signed_but_inconsistent_architecture_is_refused(
    name: str, architecture: dict[str, Any], message: str, artifacts: dict[str, Path], trust_dir: Path, publisher: KeyPairFiles, tmp_path: Path
) -> None:
    """Even a publisher's own signature does not make a malformed model loadable."""
    path = _copy(artifacts, name, tmp_path)
    resign_manifest(path, lambda document: document["model"].update(architecture=architecture), publisher)
    with pytest.raises(ArtifactError, match=message):
        load_verified(path, load_trusted_keys(trust_dir))


def test_a_tree_whose_nodes_point_backwards_is_refused(fitted: dict[str, Any], trained: Trained, publisher: KeyPairFiles, trust_dir: Path, tmp_path: Path) -> None:
    """A signed artifact whose tree could loop (a child before its parent) never scores."""
    tree = fitted["decision_tree"].model_.trees[0]
    looping = replace(tree, left=np.where(tree.left >= 0, 0, tree.left))
    ensemble = TreeEnsemble((Tree(**{**tree.arrays(), "left": looping.left}),), 0.0, "mean_probability")
    path = package_model(ensemble, trained.standardiser, PROVENANCE, None, tmp_path / "loop", load_signing_key(publisher.private_key), model_type="decision_tree")
    with pytest.raises(ArchitectureError, match="trees are not valid"):
        load_verified(path, load_trusted_keys(trust_dir))


def test_a_model_of_another_family_is_not_packaged_under_a_wrong_type(fitted: dict[str, Any], trained: Trained, publisher: KeyPairFiles, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="no model family 'gbdt' can package a TreeEnsemble"):
        package_model(fitted["random_forest"].model_, trained.standardiser, PROVENANCE, None, tmp_path / "x", load_signing_key(publisher.private_key), model_type="gbdt")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_score_serve_answers_with_a_zoo_model(artifacts: dict[str, Path], fitted: dict[str, Any], trained: Trained, trust_dir: Path) -> None:
    """`flute score serve` on a gradient-boosted model, as a real process on loopback."""
    port = _free_port()
    command = [sys.executable, "-m", "flute.cli.main", "score", "serve", str(artifacts["gbdt"]), "--host", "127.0.0.1", "--port", str(port), "--trust", str(trust_dir)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the service did not answer /health within 60 s"
            time.sleep(0.1)
        assert httpx.get(f"{url}/model", timeout=10).json()["model_type"] == "gbdt"
        answer = httpx.post(f"{url}/score", content=S1.read_bytes(), headers={"Content-Type": "application/fhir+json"}, timeout=60)
        assert answer.status_code == 200, answer.text
        prediction = answer.json()["entry"][0]["resource"]["prediction"][0]
        s1_row = np.array([[54, 1, 2, 5.0, 1, 30.0, 3]], dtype=np.float64)
        assert prediction["probabilityDecimal"] == pytest.approx(float(fitted["gbdt"].predict_proba(trained.standardiser.transform(s1_row))[0, 1]), abs=1e-15)
    finally:
        process.terminate()
        process.wait(timeout=30)
