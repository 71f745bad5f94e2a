"""Federated decision trees, random forests and gradient-boosted trees (F-HUF-4, F-HUF-5).

Every model is grown by the coordinator from histograms the hubs sum over their own rows:
1. shared quantile bins from fine-grid counts (`flute.learn.binning`);
2. per level, statistics per (open node, feature, bin): class counts for trees and forests,
   logistic-loss gradient and Hessian sums for boosting (`flute.learn.tree_rules`).
A `TreeFederation` supplies those sums: `Partitions` adds hub-side results in-process (pooled data
is one partition), the engine asks real hubs. Only sums and model parameters cross it.

Random forests bag with Poisson(1) row weights that each hub draws for itself from
(seed, tree, hub stream) and choose features per node with a generator seeded by
(seed, tree, node); gradient boosting starts from the weighted log-odds of csPCa.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, Sequence

import numpy as np

from flute.learn.binning import FineGrid, QuantileBins, fine_histograms, quantile_bins
from flute.learn.tree import FeatureChooser, forest_leaf_values, GrowthLimits, OpenNode, Tree, grow_trees, open_node_histograms, single_leaf
from flute.learn.tree_rules import ClassCountRule, Criterion, GradientRule

Link = Literal["mean_probability", "logistic_sum"]


@dataclass(frozen=True)
class TreeEnsemble:
    """Fitted trees and how their outputs become P(csPCa): the mean of leaf probabilities
    (decision tree, random forest) or the logistic of base margin + leaf margins (boosting)."""

    trees: tuple[Tree, ...]
    base_margin: float
    link: Link

    def margin(self, inputs: np.ndarray) -> np.ndarray:
        return self.base_margin + forest_leaf_values(self.trees, inputs).sum(axis=1)

    def predict_risk(self, inputs: np.ndarray) -> np.ndarray:
        if self.link == "logistic_sum":
            return np.exp(-np.logaddexp(0.0, -self.margin(inputs)))
        if not self.trees:
            raise ValueError("an ensemble averaging leaf probabilities needs at least one tree")
        return forest_leaf_values(self.trees, inputs).mean(axis=1)


# -- hyperparameters ------------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionTreeParams:
    max_depth: int = 4
    min_rows_leaf: int = 20
    criterion: Criterion = "gini"
    max_bins: int = 32


@dataclass(frozen=True)
class RandomForestParams:
    n_trees: int = 50
    max_depth: int = 6
    min_rows_leaf: int = 10
    criterion: Criterion = "gini"
    max_bins: int = 32
    max_features: float = 0.5  # share of features a node may split on
    bootstrap: bool = True


@dataclass(frozen=True)
class BoostingParams:
    n_trees: int = 100
    max_depth: int = 3
    learning_rate: float = 0.1
    l2: float = 1.0
    min_child_weight: float = 1.0
    min_split_gain: float = 0.0
    max_bins: int = 32


TreeModelParams = DecisionTreeParams | RandomForestParams | BoostingParams


# -- hub side -------------------------------------------------------------------------------


def poisson_weights(seed: int, tree: int, stream: int, n_rows: int) -> np.ndarray:
    """A hub's bootstrap row weights for one tree: Poisson(1), the limit of resampling n of n."""
    return np.random.default_rng([seed, tree, stream]).poisson(1.0, n_rows).astype(np.float64)


def _row_weights(labels: np.ndarray, class_weights: tuple[float, float]) -> np.ndarray:
    return np.where(labels == 1, class_weights[1], class_weights[0]).astype(np.float64)


def hub_class_histograms(
    inputs: np.ndarray,
    labels: np.ndarray,
    bins: QuantileBins,
    trees: Sequence[Tree],
    open_nodes: Sequence[OpenNode],
    class_weights: tuple[float, float],
    bootstrap_seed: int | None,
    stream: int,
) -> np.ndarray:
    """Class-weighted counts [non-csPCa, csPCa, rows] per open node, feature and bin."""
    binned = bins.bin_inputs(inputs)
    weights = _row_weights(labels, class_weights)
    positive = (labels == 1).astype(np.float64)

    def stats_of_tree(tree: int) -> np.ndarray:
        bag = np.ones(labels.shape[0]) if bootstrap_seed is None else poisson_weights(bootstrap_seed, tree, stream, labels.shape[0])
        return np.column_stack([bag * weights * (1.0 - positive), bag * weights * positive, bag])

    return open_node_histograms(trees, open_nodes, inputs, binned, stats_of_tree, bins.max_bins + 1)


def hub_gradient_histograms(
    inputs: np.ndarray,
    labels: np.ndarray,
    bins: QuantileBins,
    completed: TreeEnsemble,
    trees: Sequence[Tree],
    open_nodes: Sequence[OpenNode],
    class_weights: tuple[float, float],
) -> np.ndarray:
    """Logistic-loss [gradient, Hessian, rows] per open node, feature and bin, at the margins of
    the trees boosted so far."""
    binned = bins.bin_inputs(inputs)
    probability = np.exp(-np.logaddexp(0.0, -completed.margin(inputs)))
    weights = _row_weights(labels, class_weights)
    stats = np.column_stack([weights * (probability - labels), weights * probability * (1.0 - probability), np.ones(labels.shape[0])])
    return open_node_histograms(trees, open_nodes, inputs, binned, lambda _tree: stats, bins.max_bins + 1)


# -- what a federation must answer ----------------------------------------------------------


class TreeFederation(Protocol):
    """The sums a coordinator needs to grow trees; implementations add the hubs' answers."""

    def fine_histograms(self, grid: FineGrid) -> np.ndarray: ...

    def class_histograms(
        self, bins: QuantileBins, trees: Sequence[Tree], open_nodes: Sequence[OpenNode], bootstrap_seed: int | None
    ) -> np.ndarray: ...

    def gradient_histograms(
        self, bins: QuantileBins, completed: TreeEnsemble, trees: Sequence[Tree], open_nodes: Sequence[OpenNode]
    ) -> np.ndarray: ...


@dataclass(frozen=True)
class Partitions:
    """In-process federation over (inputs, labels) partitions; partition i draws its bootstrap
    weights from `streams[i]` (default i; the engine's hubs use `tree_steps.bootstrap_stream`).
    Pooled training is one partition."""

    parts: Sequence[tuple[np.ndarray, np.ndarray]]
    class_weights: tuple[float, float] = (1.0, 1.0)
    streams: Sequence[int] = ()

    def _stream(self, index: int) -> int:
        return self.streams[index] if self.streams else index

    def fine_histograms(self, grid: FineGrid) -> np.ndarray:
        return sum((fine_histograms(x, grid) for x, _ in self.parts[1:]), fine_histograms(self.parts[0][0], grid))

    def class_histograms(
        self, bins: QuantileBins, trees: Sequence[Tree], open_nodes: Sequence[OpenNode], bootstrap_seed: int | None
    ) -> np.ndarray:
        answers = [
            hub_class_histograms(x, y, bins, trees, open_nodes, self.class_weights, bootstrap_seed, self._stream(index))
            for index, (x, y) in enumerate(self.parts)
        ]
        return np.sum(answers, axis=0)

    def gradient_histograms(
        self, bins: QuantileBins, completed: TreeEnsemble, trees: Sequence[Tree], open_nodes: Sequence[OpenNode]
    ) -> np.ndarray:
        answers = [hub_gradient_histograms(x, y, bins, completed, trees, open_nodes, self.class_weights) for x, y in self.parts]
        return np.sum(answers, axis=0)


# -- coordinator side -----------------------------------------------------------------------


def _feature_chooser(n_features: int, share: float, seed: int) -> FeatureChooser:
    count = max(1, int(round(share * n_features)))

    def choose(node: OpenNode) -> np.ndarray:
        return np.sort(np.random.default_rng([seed, node.tree, node.node]).choice(n_features, size=count, replace=False))

    return choose


def fit_tree_model(
    params: TreeModelParams,
    federation: TreeFederation,
    *,
    seed: int,
    grid: FineGrid = FineGrid(),
    bins: QuantileBins | None = None,
    base_margin: float | None = None,
) -> TreeEnsemble:
    """Grow the model `params` names from the federation's sums (`seed`: forest bagging and
    feature draws) on `bins`, or, by default, on quantile bins of the federation's fine-grid counts.
    Boosting starts from `base_margin`, or, by default, from the federation's root sums."""
    if bins is None:
        bins = quantile_bins(federation.fine_histograms(grid), grid, params.max_bins)
    if isinstance(params, BoostingParams):
        return _boost(params, federation, bins, _initial_margin(federation, bins) if base_margin is None else base_margin)
    rule = ClassCountRule(params.criterion, float(params.min_rows_leaf))
    limits = GrowthLimits(params.max_depth, 2.0 * params.min_rows_leaf)
    if isinstance(params, DecisionTreeParams):
        trees = grow_trees(1, bins, rule, lambda t, o: federation.class_histograms(bins, t, o, None), limits)
        return TreeEnsemble(tuple(trees), 0.0, "mean_probability")
    bootstrap_seed = seed if params.bootstrap else None
    chooser = _feature_chooser(bins.n_features, params.max_features, seed)
    trees = grow_trees(params.n_trees, bins, rule, lambda t, o: federation.class_histograms(bins, t, o, bootstrap_seed), limits, chooser)
    return TreeEnsemble(tuple(trees), 0.0, "mean_probability")


def _initial_margin(federation: TreeFederation, bins: QuantileBins) -> float:
    """The weighted log-odds of csPCa, from the root's gradient and Hessian sums at margin 0:
    G = sum w (1/2 - y) and H = sum w / 4, so the weight is 4H and the csPCa weight 2H - G."""
    empty = TreeEnsemble((), 0.0, "logistic_sum")
    gradient, hessian, _ = federation.gradient_histograms(bins, empty, [single_leaf()], [OpenNode(0, 0)])[0, 0].sum(axis=0)
    total, positive = 4.0 * hessian, 2.0 * hessian - gradient
    if not (0.0 < positive < total):
        raise ValueError("gradient boosting needs both outcomes among the training rows")
    return float(np.log(positive / (total - positive)))


def _boost(params: BoostingParams, federation: TreeFederation, bins: QuantileBins, base_margin: float) -> TreeEnsemble:
    ensemble = TreeEnsemble((), base_margin, "logistic_sum")
    rule = GradientRule(params.l2, params.min_child_weight, params.min_split_gain, params.learning_rate)
    limits = GrowthLimits(params.max_depth, 2.0)
    for _ in range(params.n_trees):
        current = ensemble
        (tree,) = grow_trees(1, bins, rule, lambda t, o: federation.gradient_histograms(bins, current, t, o), limits)
        ensemble = TreeEnsemble(ensemble.trees + (tree,), ensemble.base_margin, "logistic_sum")
    return ensemble
