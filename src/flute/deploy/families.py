"""Model families: how a fitted model becomes named tensors and back (F-PIL-24).

An artifact stores any model whose parameters are a documented set of float64 arrays. A family
is registered under its `model_type` (the manifest's `model.model_type`) and provides:

- `tensors(model)`: the named arrays of a fitted model of this family, or None when `model` is
  not one (package_model asks each registered family in turn);
- `tensor_shapes(n_features)`: the names and shapes an artifact of this family must hold, so a
  tampered or truncated weights file is refused before any prediction;
- `predictor(tensors)`: an object with `predict_risk(inputs) -> P(csPCa)` on preprocessed inputs
  (rows in the manifest's feature order, already log-transformed, imputed and standardised).

To add a family (e.g. trees, SVM): write a class with these three members and `model_type`, and
call `register_family(MyFamily())` in the module that defines the model; nothing in the
artifact, signing, scoring or service code changes. Only `logistic_regression` can also be
exported as CQL (`flute.deploy.cql`), since CQL needs a closed-form formula.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Mapping, Protocol

import numpy as np

from flute.deploy.errors import UnknownFormat
from flute.learn.logistic import predict_probability


class Predictor(Protocol):
    def predict_risk(self, inputs: np.ndarray) -> np.ndarray: ...


class ModelFamily(Protocol):
    model_type: str

    def tensors(self, model: object) -> dict[str, np.ndarray] | None: ...

    def tensor_shapes(self, n_features: int) -> dict[str, tuple[int, ...]]: ...

    def predictor(self, tensors: Mapping[str, np.ndarray]) -> Predictor: ...


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

    def tensors(self, model: object) -> dict[str, np.ndarray] | None:
        weights = getattr(model, "weights_", None)
        if weights is None:
            weights = getattr(model, "weights", None)
        if not isinstance(weights, np.ndarray) or weights.ndim != 1 or weights.shape[0] < 2:
            return None
        weights = weights.astype(np.float64)
        return {"intercept": weights[:1].copy(), "coefficients": weights[1:].copy()}

    def tensor_shapes(self, n_features: int) -> dict[str, tuple[int, ...]]:
        return {"intercept": (1,), "coefficients": (n_features,)}

    def predictor(self, tensors: Mapping[str, np.ndarray]) -> LogisticPredictor:
        return LogisticPredictor(float(tensors["intercept"][0]), np.asarray(tensors["coefficients"], dtype=np.float64))


_FAMILIES: dict[str, ModelFamily] = {}


def register_family(family: ModelFamily) -> None:
    """Make `family` available to package_model and load_verified (re-registering replaces)."""
    _FAMILIES[family.model_type] = family


def family_of_type(model_type: str) -> ModelFamily:
    family = _FAMILIES.get(model_type)
    if family is None:
        raise UnknownFormat(
            f"model_type {model_type!r} has no registered model family (known: {sorted(_FAMILIES)}); "
            "install the FLUTE version that defines it"
        )
    return family


def family_of_model(model: object) -> tuple[ModelFamily, dict[str, np.ndarray]]:
    """The family that recognises a fitted model, with the model's tensors."""
    for family in _FAMILIES.values():
        tensors = family.tensors(model)
        if tensors is not None:
            return family, tensors
    raise TypeError(f"no registered model family can package a {type(model).__name__} (known: {sorted(_FAMILIES)})")


register_family(LogisticFamily())
