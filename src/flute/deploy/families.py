"""Model families: how a fitted model becomes named tensors and back (F-PIL-24).

An artifact stores any model whose parameters are a documented set of float64 arrays plus a few
structural numbers (the `architecture`: e.g. hidden units, number of trees), both covered by the
signature. A family is registered under its `model_type` (the manifest's `model.model_type`) and
provides:

- `exports_cql`: whether `flute.deploy.cql` can write the model as CQL (a closed-form formula:
  only `logistic_regression`); the manifest and model card state it;
- `pack(model)`: the model's `PackedModel` (named arrays and architecture), or None when `model`
  is not of this family (package_model asks each registered family in turn);
- `tensor_shapes(n_features, architecture)`: the names and shapes an artifact of this family
  must hold, so a tampered or truncated weights file is refused before any prediction (raises
  `ArchitectureError` for an architecture the family cannot read);
- `predictor(tensors, architecture, n_features)`: an object with `predict_risk(inputs) ->
  P(csPCa)` on preprocessed inputs (rows in the manifest's feature order, already
  log-transformed, imputed and standardised); raises `ArchitectureError` when the arrays'
  contents do not form a valid model (e.g. a tree node pointing to a node that does not exist).

To add a family: write a class with these members and register it with `register_family`;
nothing in the artifact, signing, scoring or service code changes. The model zoo's families
(trees, forests, boosting, linear SVM, MLP) are in `flute.deploy.zoo_families`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Mapping, Protocol

import numpy as np

from flute.deploy.errors import ArtifactError, UnknownFormat
from flute.learn.logistic import predict_probability


Architecture = Mapping[str, int | float | str]
"""A family's structural numbers, as the manifest's `model.architecture` carries them; each
family reads it into its own typed form and refuses missing, unknown or ill-typed entries."""


class ArchitectureError(ArtifactError):
    """An architecture or tensor contents that do not describe a valid model of the family."""


class Predictor(Protocol):
    def predict_risk(self, inputs: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class PackedModel:
    """What an artifact stores of a fitted model: named float64 arrays and its architecture."""

    tensors: dict[str, np.ndarray]
    architecture: dict[str, int | float | str] = field(default_factory=dict)


class ModelFamily(Protocol):
    model_type: str
    exports_cql: bool

    def pack(self, model: object) -> PackedModel | None: ...

    def tensor_shapes(self, n_features: int, architecture: Architecture) -> dict[str, tuple[int, ...]]: ...

    def predictor(self, tensors: Mapping[str, np.ndarray], architecture: Architecture, n_features: int) -> Predictor: ...


def require_no_architecture(model_type: str, architecture: Architecture) -> None:
    """For families whose tensors' shapes follow from the number of features alone."""
    if architecture:
        raise ArchitectureError(f"a {model_type} model has no architecture entries, got {sorted(architecture)}")


LOGISTIC_REGRESSION: Final = "logistic_regression"


@dataclass(frozen=True)
class LogisticPredictor:
    """P(csPCa) = 1 / (1 + exp(-(intercept + coefficients . x))), by the same function the
    federated training uses, so artifact scores equal the in-memory model's bit for bit."""

    intercept: float
    coefficients: np.ndarray

    @property
    def weights(self) -> np.ndarray:
        return np.concatenate([[self.intercept], self.coefficients])

    def predict_risk(self, inputs: np.ndarray) -> np.ndarray:
        return predict_probability(self.weights, inputs)


class LogisticFamily:
    """Tensors `intercept` (1,) and `coefficients` (n_features,). Accepts any fitted model with a
    1-D float `weights_` (flute.learn.FederatedLogisticRegression) or `weights`
    (flute.engine.result.TrainedModel) array, intercept first."""

    model_type = LOGISTIC_REGRESSION
    exports_cql = True

    def pack(self, model: object) -> PackedModel | None:
        weights = getattr(model, "weights_", None)
        if weights is None:
            weights = getattr(model, "weights", None)
        if not isinstance(weights, np.ndarray) or weights.ndim != 1 or weights.shape[0] < 2:
            return None
        weights = weights.astype(np.float64)
        return PackedModel({"intercept": weights[:1].copy(), "coefficients": weights[1:].copy()})

    def tensor_shapes(self, n_features: int, architecture: Architecture) -> dict[str, tuple[int, ...]]:
        require_no_architecture(self.model_type, architecture)
        return {"intercept": (1,), "coefficients": (n_features,)}

    def predictor(self, tensors: Mapping[str, np.ndarray], architecture: Architecture, n_features: int) -> LogisticPredictor:
        return LogisticPredictor(float(tensors["intercept"][0]), np.asarray(tensors["coefficients"], dtype=np.float64))


_FAMILIES: dict[str, ModelFamily] = {}


def register_family(family: ModelFamily) -> None:
    """Make `family` available to package_model and load_verified (re-registering replaces)."""
    _FAMILIES[family.model_type] = family


def family_of_type(model_type: str) -> ModelFamily:
    _register_zoo()
    family = _FAMILIES.get(model_type)
    if family is None:
        raise UnknownFormat(
            f"model_type {model_type!r} has no registered model family (known: {sorted(_FAMILIES)}); "
            "install the FLUTE version that defines it"
        )
    return family


def family_of_model(model: object, model_type: str | None = None) -> tuple[ModelFamily, PackedModel]:
    """The family that packs a fitted model, with the packed model. `model_type` names the family
    where the model object alone is ambiguous (a one-tree forest is also a decision tree)."""
    _register_zoo()
    families = [family_of_type(model_type)] if model_type is not None else list(_FAMILIES.values())
    for family in families:
        packed = family.pack(model)
        if packed is not None:
            return family, packed
    wanted = f"model family {model_type!r}" if model_type is not None else "registered model family"
    raise TypeError(f"no {wanted} can package a {type(model).__name__} (known: {sorted(_FAMILIES)})")


def _register_zoo() -> None:
    """The model zoo's families register themselves on import (kept out of module import time,
    so loading a logistic artifact does not import the tree and MLP code)."""
    import flute.deploy.zoo_families  # noqa: F401


register_family(LogisticFamily())
