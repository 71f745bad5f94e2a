"""Fixtures of the model deployment tests: a logistic model fitted on simulated study rows with
the federated preprocessing, a real Ed25519 publisher key, and a signed artifact of it."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from flute.cohort.sim_patients import draw_site_patients
from flute.cohort.sites import SITES
from flute.cohort.variables import VARIABLE_NAMES
from flute.deploy.artifact import package_model
from flute.deploy.keys import KeyPairFiles, generate_key_pair, load_signing_key
from flute.deploy.manifest import PrivacyRecord, TrainingProvenance, ValidationMetrics, canonical_bytes
from flute.deploy.signing import sign_manifest
from flute.learn.estimator import FederatedLogisticRegression
from flute.learn.preprocess import Standardiser, column_sums, log_transform

IG_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "flute-ig-examples"
S1 = IG_DIR / "EXP-S1-IncludedPatient.json"
S2 = IG_DIR / "EXP-S2-ExcludedPatient.json"
LOG_COLUMNS = ("psa", "prostateVolume")


@dataclass(frozen=True)
class Trained:
    model: FederatedLogisticRegression
    standardiser: Standardiser
    features: np.ndarray
    labels: np.ndarray

    def expected(self, features: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(self.standardiser.transform(features))[:, 1]


@pytest.fixture(scope="session")
def trained() -> Trained:
    patients = [p for p in draw_site_patients(SITES[0], 900, np.random.default_rng(5)) if p.truly_included]
    rows = [p.expected_row() for p in patients]
    features = np.array([[np.nan if r.variables[n] is None else float(r.variables[n]) for n in VARIABLE_NAMES] for r in rows])
    labels = np.array([p.cspca for p in patients], dtype=np.float64)
    standardiser = Standardiser.from_sums(VARIABLE_NAMES, LOG_COLUMNS, column_sums(log_transform(features, VARIABLE_NAMES, LOG_COLUMNS)))
    model = FederatedLogisticRegression(l2=1e-3).fit(standardiser.transform(features), labels)
    return Trained(model, standardiser, features, labels)


@pytest.fixture(scope="session")
def publisher(tmp_path_factory: pytest.TempPathFactory) -> KeyPairFiles:
    return generate_key_pair(tmp_path_factory.mktemp("publisher"), "publisher")


@pytest.fixture(scope="session")
def trust_dir(publisher: KeyPairFiles, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("trust")
    shutil.copy(publisher.public_key, directory / publisher.public_key.name)
    return directory


PROVENANCE = TrainingProvenance(
    study_id="cspca-test",
    spec_sha256="ab" * 32,
    hubs=("hub-a", "hub-b", "hub-c"),
    rounds=7,
    trained_at=datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc),
    code_version="0.1.0",
)
METRICS = ValidationMetrics(
    method="pooled out-of-fold predictions of 5-fold federated cross-validation",
    n=850, events=300, auroc=0.81, auroc_ci_low=0.78, auroc_ci_high=0.84,
    calibration_intercept=0.02, calibration_slope=0.97,
    net_benefit_threshold=0.15, net_benefit=0.27, net_benefit_biopsy_all=0.24,
)  # fmt: skip


def make_artifact(trained: Trained, publisher: KeyPairFiles, out: Path, *, allow_imputation: bool = False) -> Path:
    return package_model(
        trained.model, trained.standardiser, PROVENANCE, METRICS, out, load_signing_key(publisher.private_key),
        version="1.2.0", privacy=PrivacyRecord(pets=("secure-aggregation",)), allow_imputation=allow_imputation,
    )  # fmt: skip


@pytest.fixture(scope="session")
def artifact(trained: Trained, publisher: KeyPairFiles, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A signed artifact; tests that change it work on a copy (`artifact_copy`)."""
    return make_artifact(trained, publisher, tmp_path_factory.mktemp("artifacts") / "model")


@pytest.fixture
def artifact_copy(artifact: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(artifact, tmp_path / "model"))


def resign_manifest(path: Path, mutate: Callable[[dict[str, Any]], None], publisher: KeyPairFiles) -> None:
    """Change the manifest and sign it again with the trusted key, so that the checks after the
    signature (format, schema, model type, feature ranges) are the ones that must act."""
    document = json.loads((path / "manifest.json").read_text())
    mutate(document)
    (path / "manifest.json").write_bytes(canonical_bytes(document))
    (path / "signature.json").write_bytes(sign_manifest(document, load_signing_key(publisher.private_key)).to_json())
