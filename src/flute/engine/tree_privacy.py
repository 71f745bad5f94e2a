"""Record-level DP of the federated decision tree, random forest and gradient boosting
(URS-6/7/8, NF-HUF-1, F-HUF-4/5): how many histogram releases a study makes, the L2
sensitivity of one release, and the coordinator's post-processing of the noisy sums.

Releases. A DP study grows its trees on data-free bins (`flute.learn.binning.standard_normal_bins`
on the DP-standardised inputs), so no fine-grid counts are released. Every level of growth is one
release of the histograms of all open nodes: per training task `max_depth` releases for a tree or
a forest (its trees grow together), and n_trees x max_depth for boosting (every level of every
tree; it starts from the log-odds of the preprocessing release, `released_log_odds`). With the census and the preprocessing release every one of them
composes (`flute.engine.hub_privacy.study_releases`; PLD accounting).

Sensitivity of one release (adding or removing one record). The open nodes of a release are
distinct leaves of the trees being grown, so a record falls in at most one open node per tree, and
in each of the d features' histograms of that node in exactly one bin (a missing value in the
missing bin). There it adds the row
- class histograms: [w0 (1 - y), w1 y, 1], L2 norm <= sqrt(w^2 + 1), w = max class weight;
- gradient histograms (logistic loss, p in [0, 1]): [w (p - y), w p (1 - p), 1] with |g| <= w and
  0 <= h <= w / 4, L2 norm <= w sqrt(1 + 1/16 + 1/w^2) = sqrt(w^2 (17/16) + 1).
Across the d features and the T trees of the release the L2 sensitivity is sqrt(T d) times that
(e.g. a gradient release of one tree over 4 features with unit weights: sqrt(4 x 33/16) = 2.87).
Forests with Poisson bootstrap weights have no bound (a record's weight is unbounded) and are
refused, as is the SVM, whose locally trained weights have no record-level bound.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from flute.engine.model_specs import DecisionTreeSpec, GbdtSpec, LinearSvmSpec, RandomForestSpec
from flute.learn.tree import LEAF, OpenNode, Tree

if TYPE_CHECKING:
    from flute.engine.tree_records import HistogramKind

TreeModelSpec = DecisionTreeSpec | RandomForestSpec | GbdtSpec

MIN_DP_GBDT_L2 = 1.0
"""Smallest l2 of a DP boosting study: a leaf is -learning_rate G / (H + l2), and a noisy H can be
near 0 in a small node; l2 >= 1 keeps the leaf within learning_rate x |G|."""


def dp_model_refusal(model: object) -> str | None:
    """Why the study's model cannot be trained under record-level DP, or None when it can."""
    if isinstance(model, RandomForestSpec) and model.bootstrap:
        return (
            "a random forest with Poisson bootstrap weights has no record-level sensitivity bound (one record's weight is "
            "unbounded); set model.bootstrap = false with pets.mode 'secagg_dp'"
        )
    if isinstance(model, GbdtSpec) and model.l2 < MIN_DP_GBDT_L2:
        return f"a DP boosting study needs model.l2 >= {MIN_DP_GBDT_L2} (leaves divide noisy gradient sums by H + l2); got {model.l2}"
    if isinstance(model, LinearSvmSpec):
        return "the linear SVM's locally trained weights have no record-level sensitivity bound; it cannot run with pets.mode 'secagg_dp'"
    return None


def releases_per_task(model: TreeModelSpec) -> int:
    """Histogram releases of one training task (see the module docstring)."""
    if isinstance(model, GbdtSpec):
        return model.n_trees * model.max_depth
    return model.max_depth


def released_log_odds(outcomes: tuple[int, int] | None, class_weights: tuple[float, float]) -> float:
    """A DP boosting study's starting margin: the class-weighted log-odds of csPCa from the
    (csPCa rows, rows) of the study's preprocessing release, already noisy and public, so it
    costs nothing; a root histogram release would cost one more release and, with few rows,
    its noisy sums need not even hold both outcomes. The decoded counts are kept in [1, rows - 1]."""
    if outcomes is None:
        raise ValueError("a DP boosting study starts from its preprocessing release; none was made")
    positive, rows = outcomes
    return float(math.log(class_weights[1] * positive / (class_weights[0] * (rows - positive))))


def histogram_sensitivity(kind: HistogramKind, class_weights: tuple[float, float], n_trees: int, n_features: int) -> float:
    """L2 sensitivity of one histogram release over `n_trees` trees and `n_features` features."""
    weight = max(class_weights)
    per_feature = math.sqrt(weight * weight * 17.0 / 16.0 + 1.0) if kind == "gradient" else math.sqrt(weight * weight + 1.0)
    return math.sqrt(n_trees * n_features) * per_feature


def trees_touched(trees: tuple[Tree, ...], open_nodes: list[OpenNode]) -> int:
    """How many trees a release covers, after checking that its open nodes are distinct leaves
    (else one record could count twice and the sensitivity would not hold)."""
    if len(set(open_nodes)) != len(open_nodes):
        raise ValueError("the request lists an open node twice")
    if any(trees[node.tree].feature[node.node] != LEAF for node in open_nodes):
        raise ValueError("an open node of the request is not a leaf of its tree")
    return len({node.tree for node in open_nodes})


def postprocess(kind: HistogramKind, summed: np.ndarray, class_weights: tuple[float, float]) -> np.ndarray:
    """Noisy (n_open, features, bins, 3) sums made consistent (post-processing, no privacy cost).
    First each bin within the bounds the exact sums obey: counts and Hessians at least 0,
    |G| <= w rows and H <= w rows / 4. Then every feature's histogram of a node gets the same
    totals, the mean of the features' noisy totals (d noisy estimates of one number): a split's
    right side is the node total minus its left side, so without this it could go negative and a
    leaf's probability leave [0, 1]. Non-negative statistics are rescaled (they stay >= 0); the
    signed gradient is shifted in proportion to each bin's rows."""
    clean = summed.copy()
    if kind == "class":
        clean = np.clip(clean, 0.0, None)
        for stat in range(clean.shape[-1]):
            clean[..., stat] = _rescaled_to_mean_total(clean[..., stat])
        return clean
    weight = max(class_weights)
    rows = _rescaled_to_mean_total(np.clip(clean[..., 2], 0.0, None))
    hessian = _rescaled_to_mean_total(np.clip(clean[..., 1], 0.0, weight * np.clip(clean[..., 2], 0.0, None) / 4.0))
    gradient = np.clip(clean[..., 0], -weight * rows, weight * rows)
    totals = gradient.sum(axis=2, keepdims=True)
    row_totals = rows.sum(axis=2, keepdims=True)
    share = np.where(row_totals > 0, rows / np.where(row_totals > 0, row_totals, 1.0), 1.0 / rows.shape[2])
    clean[..., 0] = gradient + (totals.mean(axis=1, keepdims=True) - totals) * share
    clean[..., 1] = hessian
    clean[..., 2] = rows
    return clean


def _rescaled_to_mean_total(stat: np.ndarray) -> np.ndarray:
    """Non-negative (n_open, features, bins) sums scaled so each feature's total is the node's
    mean total (a feature whose clipped noisy total is 0 gets it spread evenly over its bins)."""
    totals = stat.sum(axis=2, keepdims=True)
    target = totals.mean(axis=1, keepdims=True)
    scaled = stat * np.divide(target, totals, out=np.zeros_like(totals), where=totals > 0)
    return np.where(totals > 0, scaled, target / stat.shape[2])
