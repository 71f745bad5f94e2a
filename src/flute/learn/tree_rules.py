"""Split gains and leaf values of the tree models (coordinator side).

Classification trees (decision tree, random forest) use node statistics
[weighted non-csPCa, weighted csPCa, rows] and an impurity criterion; gradient-boosted trees use
[gradient sum, Hessian sum, rows] of the logistic loss and XGBoost's second-order gain
(Chen & Guestrin 2016, eq. 7). Both only ever see sums, which is why hubs can release them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Criterion = Literal["gini", "entropy"]

# A gain below this fraction of the node's weight is rounding noise, not an improvement; refusing
# it keeps pure nodes from splitting on floating-point residue.
_RELATIVE_GAIN_FLOOR = 1e-9


def _impurity(stats: np.ndarray, criterion: Criterion) -> np.ndarray:
    """Impurity times node weight, for (..., >=2) class-weight statistics."""
    weight = stats[..., 0] + stats[..., 1]
    safe = np.where(weight > 0, weight, 1.0)
    p = stats[..., 1] / safe
    if criterion == "gini":
        return weight * 2.0 * p * (1.0 - p)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0)), 0.0) + np.where(p < 1, (1 - p) * np.log2(np.where(p < 1, 1 - p, 1.0)), 0.0)
    return -weight * terms


@dataclass(frozen=True)
class ClassCountRule:
    """Impurity decrease; each child needs at least `min_rows_leaf` rows. Leaf value: the
    (class-weighted) share of csPCa, i.e. a probability."""

    criterion: Criterion
    min_rows_leaf: float

    def gains(self, left: np.ndarray, right: np.ndarray, parent: np.ndarray) -> np.ndarray:
        decrease = _impurity(parent, self.criterion) - _impurity(left, self.criterion) - _impurity(right, self.criterion)
        allowed = (left[..., 2] >= self.min_rows_leaf) & (right[..., 2] >= self.min_rows_leaf)
        floor = _RELATIVE_GAIN_FLOOR * (parent[0] + parent[1])
        return np.where(allowed & (decrease > floor), decrease, -np.inf)

    def leaf_value(self, stats: np.ndarray) -> float:
        weight = stats[0] + stats[1]
        return float(stats[1] / weight) if weight > 0 else 0.5


@dataclass(frozen=True)
class GradientRule:
    """Second-order gain 1/2 [G_L^2/(H_L+l2) + G_R^2/(H_R+l2) - G^2/(H+l2)] - min_split_gain; each
    child needs Hessian sum >= min_child_weight. Leaf value: -learning_rate * G / (H + l2)."""

    l2: float
    min_child_weight: float
    min_split_gain: float
    learning_rate: float

    def _score(self, stats: np.ndarray) -> np.ndarray:
        denominator = stats[..., 1] + self.l2
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(denominator > 0, stats[..., 0] ** 2 / denominator, 0.0)

    def gains(self, left: np.ndarray, right: np.ndarray, parent: np.ndarray) -> np.ndarray:
        gain = 0.5 * (self._score(left) + self._score(right) - self._score(parent)) - self.min_split_gain
        allowed = (left[..., 1] >= self.min_child_weight) & (right[..., 1] >= self.min_child_weight) & (left[..., 2] > 0) & (right[..., 2] > 0)
        floor = _RELATIVE_GAIN_FLOOR * parent[1]
        return np.where(allowed & (gain > floor), gain, -np.inf)

    def leaf_value(self, stats: np.ndarray) -> float:
        return float(-self.learning_rate * stats[0] / (stats[1] + self.l2))
