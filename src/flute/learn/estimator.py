"""A scikit-learn-style facade over the federated logistic regression, run in one process.

`fit(X, y)` is centralised training (one partition); `fit_partitions` trains over several
partitions with exactly the local and aggregate steps the federated engine uses. The engine's
results can therefore be checked against this facade, and the facade against scikit-learn.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

from flute.learn.aggregation import Aggregator, LocalStep, NewtonAggregator
from flute.learn.logistic import (
    LogisticObjective,
    balanced_class_weights,
    local_gradient_descent,
    newton_sums,
    predict_probability,
    zero_weights,
)
from flute.learn.training import run_rounds


class FederatedLogisticRegression:
    """Logistic regression on already preprocessed inputs (see `flute.learn.preprocess`).

    Parameters mirror the study spec: `l2` penalty on coefficients, `class_weight` None or
    'balanced' (from the global class counts), the `aggregator` (default federated Newton),
    `max_rounds`/`tol` and, for gradient-descent strategies, `local_epochs`, `learning_rate`,
    `proximal_mu`.
    """

    def __init__(
        self,
        *,
        l2: float = 0.0,
        class_weight: Literal["balanced"] | None = None,
        aggregator: Aggregator | None = None,
        max_rounds: int = 25,
        tol: float = 1e-10,
        local_epochs: int = 1,
        learning_rate: float = 0.5,
        proximal_mu: float = 0.0,
    ) -> None:
        self.l2 = l2
        self.class_weight = class_weight
        self.aggregator = aggregator if aggregator is not None else NewtonAggregator()
        self.max_rounds = max_rounds
        self.tol = tol
        self.local_epochs = local_epochs
        self.learning_rate = learning_rate
        self.proximal_mu = proximal_mu

    def fit(self, inputs: np.ndarray, labels: np.ndarray) -> FederatedLogisticRegression:
        return self.fit_partitions([(inputs, labels)])

    def fit_partitions(self, partitions: Sequence[tuple[np.ndarray, np.ndarray]]) -> FederatedLogisticRegression:
        if not partitions:
            raise ValueError("fit_partitions needs at least one (inputs, labels) partition")
        n_inputs = partitions[0][0].shape[1]
        objective = self._objective(partitions)

        def local_results(_round: int, weights: np.ndarray):  # type: ignore[no-untyped-def]
            if self.aggregator.local_step is LocalStep.NEWTON:
                return [newton_sums(weights, x, y, objective) for x, y in partitions]
            return [
                local_gradient_descent(
                    weights, x, y, objective, epochs=self.local_epochs, learning_rate=self.learning_rate, proximal_mu=self.proximal_mu
                )
                for x, y in partitions
            ]

        trace = run_rounds(
            self.aggregator, objective, zero_weights(n_inputs), local_results, max_rounds=self.max_rounds, tolerance=self.tol
        )
        self.weights_ = trace.weights
        self.n_rounds_ = trace.rounds
        self.converged_ = trace.converged
        return self

    def _objective(self, partitions: Sequence[tuple[np.ndarray, np.ndarray]]) -> LogisticObjective:
        if self.class_weight is None:
            return LogisticObjective(l2=self.l2)
        if self.class_weight != "balanced":
            raise ValueError(f"class_weight must be None or 'balanced', got {self.class_weight!r}")
        n_positive = sum(int(np.sum(y == 1)) for _, y in partitions)
        n_total = sum(int(y.shape[0]) for _, y in partitions)
        return LogisticObjective(l2=self.l2, class_weights=balanced_class_weights(n_positive, n_total))

    @property
    def intercept_(self) -> float:
        return float(self.weights_[0])

    @property
    def coef_(self) -> np.ndarray:
        return self.weights_[1:]

    def predict_proba(self, inputs: np.ndarray) -> np.ndarray:
        """Columns: P(not csPCa), P(csPCa) - scikit-learn's convention."""
        positive = predict_probability(self.weights_, inputs)
        return np.column_stack([1.0 - positive, positive])
