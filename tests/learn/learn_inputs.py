"""Inputs of the model-zoo tests: three small, deliberately non-identically distributed hubs of
standardised-scale inputs (different sizes, prevalence, shifts, a discrete PI-RADS-like column and
missing values)."""

from __future__ import annotations

import numpy as np

Partition = tuple[np.ndarray, np.ndarray]


def hub(seed: int, n: int, shift: float, intercept: float, missing: float) -> Partition:
    rng = np.random.default_rng(seed)
    inputs = np.column_stack(
        [
            rng.normal(shift, 1.0, n),
            rng.normal(-shift, 1.2, n),
            rng.choice([-1.5, -0.7, 0.0, 0.8, 1.6], size=n),  # discrete, like PI-RADS
            rng.normal(0.0, 1.0, n),
        ]
    )
    logit = intercept + 1.2 * inputs[:, 0] - 0.6 * inputs[:, 1] + 1.0 * inputs[:, 2]
    labels = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    inputs[rng.random((n, 4)) < missing] = np.nan
    inputs[:, 2] = np.where(np.isnan(inputs[:, 2]), -0.7, inputs[:, 2])  # the discrete column is complete
    return inputs, labels


def three_hubs(missing: float = 0.05) -> list[Partition]:
    return [hub(1, 240, 0.0, -0.8, missing), hub(2, 120, 0.6, 0.2, missing), hub(3, 160, -0.4, -0.3, missing)]


def pooled(partitions: list[Partition]) -> Partition:
    return np.vstack([x for x, _ in partitions]), np.concatenate([y for _, y in partitions])


def without_missing(partitions: list[Partition]) -> list[Partition]:
    return [(np.where(np.isnan(x), 0.0, x), y) for x, y in partitions]
