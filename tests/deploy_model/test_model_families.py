"""Another model family plugs into the artifact format without touching it: registered under
its own model_type, it is packaged, signed, verified and scored like the logistic model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import pytest
from scipy.stats import norm

from flute.deploy.artifact import load_verified, package_model
from flute.deploy.cql import NotExpressibleInCql, cql_library
from flute.deploy.families import Architecture, PackedModel, register_family
from flute.deploy.keys import KeyPairFiles, load_signing_key, load_trusted_keys
from flute.deploy.scoring import score_units
from flute.fhir.readers import iter_units

from .conftest import METRICS, PROVENANCE, S1, Trained


@dataclass(frozen=True)
class ProbitModel:
    """A fitted model of a family the deployment code has never heard of."""

    offset: float
    slopes: np.ndarray

    def predict_risk(self, inputs: np.ndarray) -> np.ndarray:
        return norm.cdf(self.offset + inputs @ self.slopes)


class ProbitFamily:
    model_type = "test_probit"
    exports_cql = False

    def pack(self, model: object) -> PackedModel | None:
        if not isinstance(model, ProbitModel):
            return None
        return PackedModel({"offset": np.array([model.offset]), "slopes": model.slopes})

    def tensor_shapes(self, n_features: int, architecture: Architecture) -> dict[str, tuple[int, ...]]:
        return {"offset": (1,), "slopes": (n_features,)}

    def predictor(self, tensors: Mapping[str, np.ndarray], architecture: Architecture, n_features: int) -> ProbitModel:
        return ProbitModel(float(tensors["offset"][0]), tensors["slopes"])


@pytest.fixture(scope="module")
def probit(trained: Trained) -> ProbitModel:
    register_family(ProbitFamily())
    return ProbitModel(-0.4, 0.6 * trained.model.coef_)


def test_a_registered_family_round_trips_and_scores(
    probit: ProbitModel, trained: Trained, publisher: KeyPairFiles, trust_dir: Path, tmp_path: Path
) -> None:
    path = package_model(probit, trained.standardiser, PROVENANCE, METRICS, tmp_path / "probit", load_signing_key(publisher.private_key))
    model = load_verified(path, load_trusted_keys(trust_dir))
    assert model.manifest.model.model_type == "test_probit"
    assert [t.name for t in model.manifest.tensors] == ["offset", "slopes"]
    complete = trained.features[~np.isnan(trained.features).any(axis=1)]
    np.testing.assert_allclose(model.predict(complete), probit.predict_risk(trained.standardiser.transform(complete)), rtol=0, atol=1e-12)
    assert len(score_units(iter_units([S1]), model).predictions) == 1
    with pytest.raises(NotExpressibleInCql, match="'test_probit' cannot be exported as CQL"):
        cql_library(model)


def test_a_model_no_family_recognises_is_refused(trained: Trained, publisher: KeyPairFiles, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="no registered model family can package a str"):
        package_model("not a model", trained.standardiser, PROVENANCE, None, tmp_path / "x", load_signing_key(publisher.private_key))


def test_tensor_shapes_must_match_the_features(probit: ProbitModel, trained: Trained, publisher: KeyPairFiles, tmp_path: Path) -> None:
    short = ProbitModel(0.0, probit.slopes[:3])
    with pytest.raises(ValueError, match="7 features need"):
        package_model(short, trained.standardiser, PROVENANCE, None, tmp_path / "x", load_signing_key(publisher.private_key))
