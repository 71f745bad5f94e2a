"""Artifact families of the model zoo: decision tree, random forest, gradient-boosted trees,
linear SVM and MLP (F-PIL-24; the logistic family is in `families`).

Each stores named float64 arrays in weights.safetensors (never pickle) and the few structural
numbers needed to read them in the signed manifest's `model.architecture`. Loading rebuilds the
model through the engine's own parameter codec (`flute.learn.models.encode/decode`), which checks
the structure (a tree node may only point to a later node and to an existing feature), and then
predicts with the very class the federation trained - so an artifact's scores equal the
in-memory model's bit for bit. None of these exports as CQL: only a logistic model is a
closed-form formula (`families.LogisticFamily.exports_cql`).

Tensors per family (n = number of features):

| model_type | architecture | tensors |
|---|---|---|
| `linear_svm` | - | `platt` (2,) = [b, a] of P = sigmoid(b + a f(x)); `intercept` (1,), `coefficients` (n,) of f |
| `mlp` | `hidden_units`, `activation` (tanh/relu) | `parameters` (n*h + 2h + 1,): the flat vector of `flute.learn.mlp` (W1 row-major n x h, b1, w2, b2) |
| `decision_tree`, `random_forest`, `gbdt` | `n_trees`, `n_nodes` (all trees) | `base_margin` (1,), `node_counts` (n_trees,), and per node, trees one after another: `feature`, `threshold_bin`, `threshold`, `missing_left`, `left`, `right`, `value` (n_nodes,) |

Tree node arrays hold integers (feature index, child node index; -1 at leaves) stored exactly as
float64; a node goes left when its input is <= `threshold` (missing inputs go left when
`missing_left` is 1). Decision trees and forests average leaf probabilities; boosting adds
leaf margins to `base_margin` and applies the logistic function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Mapping, cast, get_args

import numpy as np

from flute.deploy.families import Architecture, ArchitectureError, PackedModel, register_family, require_no_architecture
from flute.learn.mlp import Activation, MlpModel, n_parameters
from flute.learn.models import TREE_FIELDS, ModelFormatError, decode, encode
from flute.learn.svm import LinearSvmModel
from flute.learn.tree import Tree
from flute.learn.tree_models import Link, TreeEnsemble

_ACTIVATIONS: Final[tuple[str, ...]] = get_args(Activation)
_INTEGER_FIELDS: Final = frozenset(TREE_FIELDS) - {"threshold", "value"}


def _fitted(model: object, kind: type) -> object | None:
    """The fitted model itself, or the `model_` of a scikit-learn-style estimator holding one."""
    if isinstance(model, kind):
        return model
    inner = getattr(model, "model_", None)
    return inner if isinstance(inner, kind) else None


def _integer(architecture: Architecture, key: str, model_type: str, *, minimum: int = 1) -> int:
    value = architecture.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ArchitectureError(f"a {model_type} artifact needs architecture.{key} as an integer >= {minimum}, got {value!r}")
    return value


def _expect_keys(architecture: Architecture, keys: set[str], model_type: str) -> None:
    if set(architecture) != keys:
        raise ArchitectureError(f"a {model_type} artifact has architecture entries {sorted(keys)}, got {sorted(architecture)}")


class LinearSvmFamily:
    model_type = "linear_svm"
    exports_cql = False

    def pack(self, model: object) -> PackedModel | None:
        svm = _fitted(model, LinearSvmModel)
        if not isinstance(svm, LinearSvmModel):
            return None
        weights = np.asarray(svm.svm_weights, dtype=np.float64)
        return PackedModel({"platt": np.asarray(svm.platt, dtype=np.float64).copy(), "intercept": weights[:1].copy(), "coefficients": weights[1:].copy()})

    def tensor_shapes(self, n_features: int, architecture: Architecture) -> dict[str, tuple[int, ...]]:
        require_no_architecture(self.model_type, architecture)
        return {"platt": (2,), "intercept": (1,), "coefficients": (n_features,)}

    def predictor(self, tensors: Mapping[str, np.ndarray], architecture: Architecture, n_features: int) -> LinearSvmModel:
        return LinearSvmModel(np.concatenate([tensors["intercept"], tensors["coefficients"]]), np.asarray(tensors["platt"], dtype=np.float64))


class MlpFamily:
    """Serialised from the flat parameter vector and its hyperparameters only, so any
    implementation of `flute.learn.mlp` that keeps that vector layout reads the same artifact."""

    model_type = "mlp"
    exports_cql = False

    def pack(self, model: object) -> PackedModel | None:
        mlp = _fitted(model, MlpModel)
        if not isinstance(mlp, MlpModel):
            return None
        return PackedModel(
            {"parameters": np.asarray(mlp.vector, dtype=np.float64).copy()},
            {"hidden_units": int(mlp.hidden_units), "activation": str(mlp.activation)},
        )

    def tensor_shapes(self, n_features: int, architecture: Architecture) -> dict[str, tuple[int, ...]]:
        hidden, _ = self._read(architecture)
        return {"parameters": (n_parameters(n_features, hidden),)}

    def predictor(self, tensors: Mapping[str, np.ndarray], architecture: Architecture, n_features: int) -> MlpModel:
        hidden, activation = self._read(architecture)
        return MlpModel(np.asarray(tensors["parameters"], dtype=np.float64), n_features, hidden, activation)  # type: ignore[arg-type]

    def _read(self, architecture: Architecture) -> tuple[int, str]:
        _expect_keys(architecture, {"hidden_units", "activation"}, self.model_type)
        activation = architecture["activation"]
        if activation not in _ACTIVATIONS:
            raise ArchitectureError(f"an mlp artifact's architecture.activation must be one of {list(_ACTIVATIONS)}, got {activation!r}")
        return _integer(architecture, "hidden_units", self.model_type), str(activation)


@dataclass(frozen=True)
class TreeEnsembleFamily:
    """Decision tree (one averaged tree), random forest (averaged trees) or boosting (summed
    margins). `single_tree` restricts the decision-tree family to exactly one tree."""

    model_type: str
    link: Link
    single_tree: bool = False
    exports_cql: bool = False

    def pack(self, model: object) -> PackedModel | None:
        ensemble = _fitted(model, TreeEnsemble)
        if not isinstance(ensemble, TreeEnsemble) or ensemble.link != self.link or (self.single_tree and len(ensemble.trees) != 1):
            return None
        tensors = {
            "base_margin": np.array([ensemble.base_margin], dtype=np.float64),
            "node_counts": np.array([tree.n_nodes for tree in ensemble.trees], dtype=np.float64),
        }
        for name in TREE_FIELDS:
            tensors[name] = np.concatenate([getattr(tree, name) for tree in ensemble.trees]).astype(np.float64)
        return PackedModel(tensors, {"n_trees": len(ensemble.trees), "n_nodes": int(sum(tree.n_nodes for tree in ensemble.trees))})

    def tensor_shapes(self, n_features: int, architecture: Architecture) -> dict[str, tuple[int, ...]]:
        n_trees, n_nodes = self._read(architecture)
        return {"base_margin": (1,), "node_counts": (n_trees,), **{name: (n_nodes,) for name in TREE_FIELDS}}

    def predictor(self, tensors: Mapping[str, np.ndarray], architecture: Architecture, n_features: int) -> TreeEnsemble:
        n_trees, n_nodes = self._read(architecture)
        counts = tensors["node_counts"]
        not_integer = sorted(name for name in ("node_counts", *_INTEGER_FIELDS) if not np.array_equal(tensors[name], np.round(tensors[name])))
        if not_integer:
            raise ArchitectureError(f"a {self.model_type} artifact's tensors {not_integer} must hold whole numbers")
        if np.any(counts < 1) or int(counts.sum()) != n_nodes:
            raise ArchitectureError(f"a {self.model_type} artifact's node_counts {counts.astype(int).tolist()} do not add up to architecture.n_nodes {n_nodes}")
        ends = np.cumsum(counts.astype(np.int64))
        trees = tuple(
            Tree(**{name: tensors[name][end - size : end].astype(np.int64 if name in _INTEGER_FIELDS else np.float64) for name in TREE_FIELDS})
            for size, end in zip(counts.astype(np.int64), ends)
        )
        ensemble = TreeEnsemble(trees, float(tensors["base_margin"][0]), self.link)
        try:
            decoded = decode(self.model_type, encode(ensemble), n_features)
        except ModelFormatError as exc:
            raise ArchitectureError(f"the {self.model_type} artifact's trees are not valid: {exc}") from None
        return cast(TreeEnsemble, decoded)

    def _read(self, architecture: Architecture) -> tuple[int, int]:
        _expect_keys(architecture, {"n_trees", "n_nodes"}, self.model_type)
        n_trees = _integer(architecture, "n_trees", self.model_type)
        if self.single_tree and n_trees != 1:
            raise ArchitectureError(f"a decision_tree artifact holds exactly one tree, architecture.n_trees is {n_trees}")
        return n_trees, _integer(architecture, "n_nodes", self.model_type)


ZOO_FAMILIES: Final = (
    LinearSvmFamily(),
    MlpFamily(),
    TreeEnsembleFamily("decision_tree", "mean_probability", single_tree=True),
    TreeEnsembleFamily("random_forest", "mean_probability"),
    TreeEnsembleFamily("gbdt", "logistic_sum"),
)

for _family in ZOO_FAMILIES:
    register_family(_family)
