"""Fitted models of the vetted registry and their one wire/storage form: a float64 parameter vector.

Every fitted model predicts P(csPCa) from preprocessed inputs (`predict_risk`) and packs into a
flat float64 vector (`encode`) that `decode(model_name, vector)` turns back into the model. The
engine carries that vector where it carries logistic weights (evaluation requests, results,
checkpoints), so validation, leave-one-hub-out and the final model work alike for every model.

Layouts (integers are stored exactly as float64):
    logistic_regression               weights (intercept first)
    linear_svm                        [platt_b, platt_a, svm weights (intercept first)...]
    mlp                               [hidden units, activation (0 tanh, 1 relu), network vector
                                       in the layout of `flute.learn.mlp`]
    decision_tree / random_forest / gbdt
        [link (0 mean probability, 1 logistic sum), base_margin, n_trees, n_nodes per tree...,
         then per tree its node arrays in the order of `TREE_FIELDS`, each n_nodes long]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np

from flute.learn.logistic import predict_probability
from flute.learn.mlp import Activation, MlpModel, n_parameters
from flute.learn.svm import LinearSvmModel
from flute.learn.tree import Tree
from flute.learn.tree_models import Link, TreeEnsemble

TREE_MODELS: Final = ("decision_tree", "random_forest", "gbdt")
MODEL_NAMES: Final = ("logistic_regression", "linear_svm", "mlp", *TREE_MODELS)
TREE_FIELDS: Final = ("feature", "threshold_bin", "threshold", "missing_left", "left", "right", "value")
_LINKS: Final[tuple[Link, ...]] = ("mean_probability", "logistic_sum")
_ACTIVATIONS: Final[tuple[Activation, ...]] = ("tanh", "relu")


class ModelFormatError(ValueError):
    """A parameter vector that does not decode into the named model."""


class FittedModel(Protocol):
    def predict_risk(self, inputs: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class LogisticModel:
    weights: np.ndarray

    def predict_risk(self, inputs: np.ndarray) -> np.ndarray:
        return predict_probability(self.weights, inputs)


def encode(model: FittedModel) -> np.ndarray:
    if isinstance(model, LogisticModel):
        return np.array(model.weights, dtype=np.float64)
    if isinstance(model, LinearSvmModel):
        return np.concatenate([model.platt, model.svm_weights]).astype(np.float64)
    if isinstance(model, MlpModel):
        return np.concatenate([[float(model.hidden_units), float(_ACTIVATIONS.index(model.activation))], model.vector]).astype(np.float64)
    if isinstance(model, TreeEnsemble):
        head = [float(_LINKS.index(model.link)), model.base_margin, float(len(model.trees))]
        sizes = [float(tree.n_nodes) for tree in model.trees]
        body = [getattr(tree, name).astype(np.float64) for tree in model.trees for name in TREE_FIELDS]
        return np.concatenate([np.array(head + sizes), *body])
    raise TypeError(f"no parameter layout for {type(model).__name__}")


def decode(model_name: str, vector: np.ndarray, n_inputs: int) -> FittedModel:
    """The fitted model `vector` encodes; checks the layout against the study's `n_inputs`."""
    if model_name == "logistic_regression":
        _expect_length(model_name, vector, n_inputs + 1)
        return LogisticModel(vector)
    if model_name == "linear_svm":
        _expect_length(model_name, vector, n_inputs + 3)
        return LinearSvmModel(vector[2:], vector[:2])
    if model_name == "mlp":
        return _decode_mlp(vector, n_inputs)
    if model_name in TREE_MODELS:
        return _decode_trees(model_name, vector, n_inputs)
    raise ModelFormatError(f"unknown model {model_name!r}; the vetted models are {list(MODEL_NAMES)}")


def _expect_length(model_name: str, vector: np.ndarray, length: int) -> None:
    if vector.ndim != 1 or vector.shape[0] != length:
        raise ModelFormatError(f"{model_name} parameters must be a vector of {length} values, got shape {vector.shape}")


def _decode_mlp(vector: np.ndarray, n_inputs: int) -> MlpModel:
    if vector.ndim != 1 or vector.shape[0] < 2 or vector[1] not in (0.0, 1.0) or not (1 <= vector[0] <= 1024) or vector[0] != int(vector[0]):
        raise ModelFormatError("mlp parameters must start with [hidden units, activation code]")
    hidden = int(vector[0])
    _expect_length("mlp", vector, 2 + n_parameters(n_inputs, hidden))
    return MlpModel(vector[2:], n_inputs, hidden, _ACTIVATIONS[int(vector[1])])


def _decode_trees(model_name: str, vector: np.ndarray, n_inputs: int) -> TreeEnsemble:
    if vector.ndim != 1 or vector.shape[0] < 3:
        raise ModelFormatError(f"{model_name} parameters are too short to hold a tree ensemble header")
    link_code, base_margin, n_trees = vector[0], float(vector[1]), int(vector[2])
    if link_code not in (0.0, 1.0) or n_trees < 0 or vector.shape[0] < 3 + n_trees:
        raise ModelFormatError(f"{model_name} parameters have an invalid header {vector[:3].tolist()}")
    sizes = vector[3 : 3 + n_trees].astype(np.int64)
    if np.any(sizes < 1) or vector.shape[0] != 3 + n_trees + len(TREE_FIELDS) * int(sizes.sum()):
        raise ModelFormatError(f"{model_name} parameters: node counts {sizes.tolist()} do not match the vector length {vector.shape[0]}")
    trees, offset = [], 3 + n_trees
    for size in sizes:
        fields = {}
        for name in TREE_FIELDS:
            values = vector[offset : offset + size]
            fields[name] = values if name in ("threshold", "value") else values.astype(np.int64)
            offset += size
        tree = Tree(**fields)
        internal = np.flatnonzero(tree.feature >= 0)
        children = np.concatenate([tree.left[internal], tree.right[internal]])
        # Children after their parent: evaluation always terminates.
        if np.any(tree.feature >= n_inputs) or np.any(children <= np.tile(internal, 2)) or np.any(children >= size):
            raise ModelFormatError(f"{model_name} parameters: a tree refers to a feature or node that does not exist")
        trees.append(tree)
    return TreeEnsemble(tuple(trees), base_margin, _LINKS[int(link_code)])
