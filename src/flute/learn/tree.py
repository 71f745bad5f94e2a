"""Binary decision trees as flat arrays, and their growth from aggregated node histograms.

A tree is a set of parallel node arrays (feature, threshold bin, threshold value, default
direction for missing values, left child, right child, value): serialisable into records as they
are, and evaluated without any reference to how it was trained. A row goes left at a node when
x[feature] <= threshold, or when x[feature] is missing and `missing_left` is set.

Growth is level by level and does not know where histograms come from: `grow_trees` asks a
`HistogramSource` for the summed statistics of the open nodes (a federation sums its hubs' answers,
a pooled run computes them over one partition), so federated and pooled growth run the very same
split decisions (F-HUF-4).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import numpy as np

from flute.learn.binning import QuantileBins

LEAF = -1


@dataclass(frozen=True)
class Tree:
    """Node arrays of one tree; node 0 is the root, children have larger indices."""

    feature: np.ndarray  # int64, LEAF at leaves
    threshold_bin: np.ndarray  # int64: go left when bin <= threshold_bin
    threshold: np.ndarray  # float64: the same test on input values, x <= threshold
    missing_left: np.ndarray  # int64 0/1
    left: np.ndarray  # int64, LEAF at leaves
    right: np.ndarray  # int64
    value: np.ndarray  # float64: the leaf's output (probability or margin)

    @property
    def n_nodes(self) -> int:
        return int(self.feature.shape[0])

    def apply(self, inputs: np.ndarray) -> np.ndarray:
        """The node each row reaches (a leaf for a finished tree)."""
        node = np.zeros(inputs.shape[0], dtype=np.int64)
        active = np.flatnonzero(self.feature[node] != LEAF)
        while active.size:
            at = node[active]
            values = inputs[active, self.feature[at]]
            go_left = np.where(np.isnan(values), self.missing_left[at] == 1, values <= self.threshold[at])
            node[active] = np.where(go_left, self.left[at], self.right[at])
            active = active[self.feature[node[active]] != LEAF]
        return node

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        return self.value[self.apply(inputs)]

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "feature": self.feature,
            "threshold_bin": self.threshold_bin,
            "threshold": self.threshold,
            "missing_left": self.missing_left,
            "left": self.left,
            "right": self.right,
            "value": self.value,
        }


def forest_leaf_values(trees: Sequence[Tree], inputs: np.ndarray) -> np.ndarray:
    """The value of the leaf each row reaches in each tree, (n_rows, n_trees): all trees routed
    together (one pass per tree level, not per tree), which keeps boosting's margins cheap."""
    if not trees:
        return np.zeros((inputs.shape[0], 0))
    offsets = np.cumsum([0] + [tree.n_nodes for tree in trees[:-1]])
    feature = np.concatenate([tree.feature for tree in trees])
    threshold = np.concatenate([tree.threshold for tree in trees])
    missing_left = np.concatenate([tree.missing_left for tree in trees]) == 1
    left = np.concatenate([np.where(tree.left == LEAF, LEAF, tree.left + offset) for tree, offset in zip(trees, offsets)])
    right = np.concatenate([np.where(tree.right == LEAF, LEAF, tree.right + offset) for tree, offset in zip(trees, offsets)])
    node = np.broadcast_to(offsets, (inputs.shape[0], len(trees))).copy()
    rows = np.repeat(np.arange(inputs.shape[0]), len(trees))
    node = node.ravel()
    active = np.flatnonzero(feature[node] != LEAF)
    while active.size:
        at = node[active]
        values = inputs[rows[active], feature[at]]
        go_left = np.where(np.isnan(values), missing_left[at], values <= threshold[at])
        node[active] = np.where(go_left, left[at], right[at])
        active = active[feature[node[active]] != LEAF]
    return np.concatenate([tree.value for tree in trees])[node].reshape(inputs.shape[0], len(trees))


INT_FIELDS = ("feature", "threshold_bin", "missing_left", "left", "right")
FLOAT_FIELDS = ("threshold", "value")


@dataclass
class _Builder:
    """A tree under construction (mutable lists; `freeze` gives the Tree)."""

    feature: list[int] = field(default_factory=lambda: [LEAF])
    threshold_bin: list[int] = field(default_factory=lambda: [0])
    threshold: list[float] = field(default_factory=lambda: [0.0])
    missing_left: list[int] = field(default_factory=lambda: [0])
    left: list[int] = field(default_factory=lambda: [LEAF])
    right: list[int] = field(default_factory=lambda: [LEAF])
    value: list[float] = field(default_factory=lambda: [0.0])

    def add_children(self, node: int, split: Split, left_value: float, right_value: float) -> tuple[int, int]:
        children = []
        for child_value in (left_value, right_value):
            children.append(len(self.feature))
            self.feature.append(LEAF)
            self.threshold_bin.append(0)
            self.threshold.append(0.0)
            self.missing_left.append(0)
            self.left.append(LEAF)
            self.right.append(LEAF)
            self.value.append(child_value)
        self.feature[node] = split.feature
        self.threshold_bin[node] = split.bin
        self.threshold[node] = split.threshold
        self.missing_left[node] = int(split.missing_left)
        self.left[node], self.right[node] = children
        return children[0], children[1]

    def freeze(self) -> Tree:
        ints = {name: np.array(getattr(self, name), dtype=np.int64) for name in INT_FIELDS}
        floats = {name: np.array(getattr(self, name), dtype=np.float64) for name in FLOAT_FIELDS}
        return Tree(**ints, **floats)


def single_leaf() -> Tree:
    """A tree that is only its root (a leaf of value 0)."""
    return _Builder().freeze()


@dataclass(frozen=True)
class Split:
    feature: int
    bin: int
    threshold: float
    missing_left: bool
    gain: float
    left_stats: np.ndarray
    right_stats: np.ndarray


class SplitRule(Protocol):
    """How statistics become split gains and leaf values (classification counts or gradients).

    Statistics of a node are a vector whose last entry is the row count (bootstrap-weighted)."""

    def gains(self, left: np.ndarray, right: np.ndarray, parent: np.ndarray) -> np.ndarray:
        """Gain of every candidate (..., n_stats) split; -inf where the split is not allowed."""
        ...

    def leaf_value(self, stats: np.ndarray) -> float: ...


@dataclass(frozen=True)
class OpenNode:
    tree: int
    node: int


HistogramSource = Callable[[Sequence[Tree], Sequence[OpenNode]], np.ndarray]
"""(trees so far, open nodes) -> summed histograms (n_open, n_features, max_bins + 1, n_stats)."""

FeatureChooser = Callable[[OpenNode], np.ndarray]
"""The features a node may split on (random forests draw a subset per node)."""


def best_split(histogram: np.ndarray, bins: QuantileBins, rule: SplitRule, features: np.ndarray) -> Split | None:
    """The best split of one node from its histogram (n_features, max_bins + 1, n_stats), trying
    each cut with missing values sent left and right. Ties go to the lowest feature, bin and
    'missing right', so every run picks the same split."""
    regular = histogram[:, : bins.max_bins, :]
    missing = histogram[:, bins.missing_bin, :]
    parent = histogram[0].sum(axis=0)
    cumulative = np.cumsum(regular, axis=1)[:, :-1, :]  # left = bins 0..t, t < max_bins - 1
    best: Split | None = None
    for feature in features:
        n_cuts = bins.cuts[feature].shape[0]
        if n_cuts == 0:
            continue
        for missing_left in (False, True):
            left = cumulative[feature, :n_cuts] + (missing[feature] if missing_left else 0.0)
            right = parent - left
            gains = rule.gains(left, right, parent)
            index = int(np.argmax(gains))
            gain = float(gains[index])
            if gain > 0.0 and (best is None or gain > best.gain):
                best = Split(int(feature), index, float(bins.cuts[feature][index]), missing_left, gain, left[index], right[index])
    return best


@dataclass(frozen=True)
class GrowthLimits:
    max_depth: int
    min_rows_split: float


def grow_trees(
    n_trees: int,
    bins: QuantileBins,
    rule: SplitRule,
    histograms: HistogramSource,
    limits: GrowthLimits,
    choose_features: FeatureChooser | None = None,
) -> list[Tree]:
    """Grow `n_trees` trees together, level by level: one histogram request per level covers the
    open nodes of every tree (a random forest needs `max_depth` rounds, not trees x depth)."""
    all_features = np.arange(bins.n_features)
    builders = [_Builder() for _ in range(n_trees)]
    open_nodes = [OpenNode(tree, 0) for tree in range(n_trees)]
    for depth in range(limits.max_depth):
        if not open_nodes:
            break
        summed = histograms([builder.freeze() for builder in builders], open_nodes)
        next_open = []
        for slot, node in enumerate(open_nodes):
            builder = builders[node.tree]
            stats = summed[slot, 0].sum(axis=0)
            if depth == 0:
                builder.value[0] = rule.leaf_value(stats)
            if stats[-1] < limits.min_rows_split:
                continue
            features = all_features if choose_features is None else choose_features(node)
            split = best_split(summed[slot], bins, rule, features)
            if split is None:
                continue
            children = builder.add_children(node.node, split, rule.leaf_value(split.left_stats), rule.leaf_value(split.right_stats))
            if depth + 1 < limits.max_depth:
                next_open += [OpenNode(node.tree, child) for child in children]
        open_nodes = next_open
    return [builder.freeze() for builder in builders]


def _slot_histograms(binned: np.ndarray, row_stats: np.ndarray, slots: np.ndarray, n_slots: int, n_bins: int) -> np.ndarray:
    """Statistics of the given rows summed per (slot, feature, bin) -> (n_slots, n_features,
    n_bins, n_stats)."""
    n_features, n_stats = binned.shape[1], row_stats.shape[1]
    out = np.zeros((n_slots, n_features, n_bins, n_stats), dtype=np.float64)
    for feature in range(n_features):
        cells = slots * n_bins + binned[:, feature]
        for stat in range(n_stats):
            out[:, feature, :, stat] = np.bincount(cells, weights=row_stats[:, stat], minlength=n_slots * n_bins).reshape(n_slots, n_bins)
    return out


def open_node_histograms(
    trees: Sequence[Tree],
    open_nodes: Sequence[OpenNode],
    inputs: np.ndarray,
    binned: np.ndarray,
    stats_of_tree: Callable[[int], np.ndarray],
    n_bins: int,
) -> np.ndarray:
    """Hub-side: route the rows through each tree that has open nodes and sum the rows' statistics
    (`stats_of_tree(tree)`: (n_rows, n_stats), e.g. bootstrap-weighted class counts) per open node,
    feature and bin. Slots follow the order of `open_nodes`; rows in no open node are left out.
    Additive over hubs."""
    lookups: dict[int, np.ndarray] = {}
    for slot, node in enumerate(open_nodes):
        lookup = lookups.setdefault(node.tree, np.full(trees[node.tree].n_nodes, -1, dtype=np.int64))
        lookup[node.node] = slot
    parts_binned, parts_stats, parts_slots = [], [], []
    for tree, lookup in sorted(lookups.items()):
        slots = lookup[trees[tree].apply(inputs)]
        member = slots >= 0
        parts_binned.append(binned[member])
        parts_stats.append(stats_of_tree(tree)[member])
        parts_slots.append(slots[member])
    return _slot_histograms(np.concatenate(parts_binned), np.concatenate(parts_stats), np.concatenate(parts_slots), len(open_nodes), n_bins)
