"""Cross-validation fold assignment that a hub can compute on its own rows.

Folds are assigned where the data lives (F-PIL-22): the coordinator sends only the number of
folds and a seed, and every hub stratifies its own rows by outcome. The same function assigns the
folds of a centralised or local-only comparison, so every arm of a benchmark sees the same folds.
"""

from __future__ import annotations

import numpy as np


def stratified_folds(labels: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold index (0..n_folds-1) per row, balanced within each outcome class.

    Each class's rows are shuffled with a generator seeded by `seed` and dealt round-robin, so
    fold sizes differ by at most one per class and the assignment depends only on (labels, seed).
    """
    if n_folds < 2:
        raise ValueError(f"stratified_folds needs at least 2 folds, got {n_folds}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    folds = np.empty(labels.shape[0], dtype=np.int64)
    offset = 0
    for value in np.unique(labels):
        members = np.flatnonzero(labels == value)
        shuffled = members[rng.permutation(members.shape[0])]
        # Continue the deal where the previous class stopped so that small classes do not all
        # land in fold 0.
        folds[shuffled] = (np.arange(shuffled.shape[0]) + offset) % n_folds
        offset += shuffled.shape[0]
    return folds
