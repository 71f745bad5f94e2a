"""scikit-learn-style facades over the federated trees, forests, boosting, linear SVM and MLP, run in
one process (`FederatedLogisticRegression` is the logistic counterpart).

`fit(X, y)` is centralised training (one partition); `fit_partitions` trains over several
partitions with exactly the hub-side and coordinator-side functions the engine runs, so the
engine's models can be checked against these and these against pooled training. Inputs are
preprocessed (standardised; NaN allowed for trees, which learn a default direction for it).
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

from flute.learn.aggregation import Aggregator, AveragingAggregator, LocalStep
from flute.learn.logistic import LocalFit, LogisticObjective, balanced_class_weights, zero_weights
from flute.learn.mlp import DpSgd, MlpModel, MlpParams, dp_mlp_descent, initial_vector, local_mlp_descent
from flute.learn.svm import LinearSvmModel, LinearSvmParams, PlattResults, decision_function, local_svm_descent, platt_sums, train_linear_svm
from flute.learn.training import run_rounds
from flute.learn.tree_models import Partitions, TreeEnsemble, TreeModelParams, fit_tree_model

ClassWeight = Literal["balanced"] | None
Partition = tuple[np.ndarray, np.ndarray]


def _class_weights(partitions: Sequence[Partition], class_weight: ClassWeight) -> tuple[float, float]:
    if class_weight is None:
        return (1.0, 1.0)
    if class_weight != "balanced":
        raise ValueError(f"class_weight must be None or 'balanced', got {class_weight!r}")
    n_positive = sum(int(np.sum(y == 1)) for _, y in partitions)
    return balanced_class_weights(n_positive, sum(int(y.shape[0]) for _, y in partitions))


def _probabilities(positive: np.ndarray) -> np.ndarray:
    """Columns P(not csPCa), P(csPCa): scikit-learn's convention."""
    return np.column_stack([1.0 - positive, positive])


class FederatedTreeClassifier:
    """Decision tree, random forest or gradient-boosted trees, as `params` says."""

    def __init__(self, params: TreeModelParams, *, class_weight: ClassWeight = None, seed: int = 0) -> None:
        self.params = params
        self.class_weight = class_weight
        self.seed = seed

    def fit(self, inputs: np.ndarray, labels: np.ndarray) -> FederatedTreeClassifier:
        return self.fit_partitions([(inputs, labels)])

    def fit_partitions(self, partitions: Sequence[Partition]) -> FederatedTreeClassifier:
        if not partitions:
            raise ValueError("fit_partitions needs at least one (inputs, labels) partition")
        class_weights = _class_weights(partitions, self.class_weight)
        self.model_: TreeEnsemble = fit_tree_model(self.params, Partitions(partitions, class_weights), seed=self.seed)
        return self

    def predict_proba(self, inputs: np.ndarray) -> np.ndarray:
        return _probabilities(self.model_.predict_risk(inputs))


class FederatedLinearSvm:
    """Linear SVM by local (sub)gradient rounds averaged by `aggregator` (FedAvg by default;
    `proximal_mu` > 0 makes it FedProx), then a federated Platt map for probabilities."""

    def __init__(
        self,
        params: LinearSvmParams = LinearSvmParams(),
        *,
        class_weight: ClassWeight = None,
        aggregator: Aggregator | None = None,
        max_rounds: int = 200,
        tol: float = 1e-8,
        local_epochs: int = 5,
        learning_rate: float = 0.5,
        proximal_mu: float = 0.0,
    ) -> None:
        self.params = params
        self.class_weight = class_weight
        self.aggregator = aggregator if aggregator is not None else AveragingAggregator()
        if self.aggregator.local_step is not LocalStep.GRADIENT_DESCENT:
            raise ValueError("the linear SVM trains by local steps; use FedAvg, FedProx or FedAdam aggregation")
        self.max_rounds = max_rounds
        self.tol = tol
        self.local_epochs = local_epochs
        self.learning_rate = learning_rate
        self.proximal_mu = proximal_mu

    def fit(self, inputs: np.ndarray, labels: np.ndarray) -> FederatedLinearSvm:
        return self.fit_partitions([(inputs, labels)])

    def fit_partitions(self, partitions: Sequence[Partition]) -> FederatedLinearSvm:
        if not partitions:
            raise ValueError("fit_partitions needs at least one (inputs, labels) partition")
        objective = LogisticObjective(self.params.l2, _class_weights(partitions, self.class_weight))

        def local_fits(_round: int, weights: np.ndarray) -> list[LocalFit]:
            return [
                local_svm_descent(
                    weights, x, y, objective, self.params.loss, epochs=self.local_epochs, learning_rate=self.learning_rate, proximal_mu=self.proximal_mu
                )
                for x, y in partitions
            ]

        def platt_results(weights: np.ndarray) -> PlattResults:
            return lambda _round, platt: [platt_sums(platt, weights, x, y) for x, y in partitions]

        self.model_: LinearSvmModel
        self.model_, trace = train_linear_svm(
            self.aggregator, objective, zero_weights(partitions[0][0].shape[1]), local_fits, platt_results, max_rounds=self.max_rounds, tolerance=self.tol
        )
        self.n_rounds_ = trace.rounds
        return self

    def decision_function(self, inputs: np.ndarray) -> np.ndarray:
        return decision_function(self.model_.svm_weights, inputs)

    def predict_proba(self, inputs: np.ndarray) -> np.ndarray:
        return _probabilities(self.model_.predict_risk(inputs))


class FederatedMlp:
    """One-hidden-layer network by local gradient rounds averaged by `aggregator` (FedAvg by
    default; `proximal_mu` > 0 makes it FedProx), from a seeded initial vector. With `dp`, each
    partition trains by DP-SGD (`flute.learn.mlp.dp_mlp_descent`) with noise from a fresh
    cryptographic `NoiseSource`; `flute.privacy.dp.accounting.calibrate_noise_multiplier` finds
    the multiplier for a target epsilon over rounds x local_epochs x dp.steps_per_epoch steps."""

    def __init__(
        self,
        params: MlpParams = MlpParams(),
        *,
        class_weight: ClassWeight = None,
        aggregator: Aggregator | None = None,
        max_rounds: int = 300,
        tol: float = 1e-8,
        local_epochs: int = 5,
        learning_rate: float = 0.5,
        proximal_mu: float = 0.0,
        seed: int = 0,
        dp: DpSgd | None = None,
    ) -> None:
        self.params = params
        self.class_weight = class_weight
        self.aggregator = aggregator if aggregator is not None else AveragingAggregator()
        if self.aggregator.local_step is not LocalStep.GRADIENT_DESCENT:
            raise ValueError("the MLP trains by local steps; use FedAvg, FedProx or FedAdam aggregation")
        self.dp = dp
        self.max_rounds = max_rounds
        self.tol = tol
        self.local_epochs = local_epochs
        self.learning_rate = learning_rate
        self.proximal_mu = proximal_mu
        self.seed = seed

    def fit(self, inputs: np.ndarray, labels: np.ndarray) -> FederatedMlp:
        return self.fit_partitions([(inputs, labels)])

    def fit_partitions(self, partitions: Sequence[Partition]) -> FederatedMlp:
        if not partitions:
            raise ValueError("fit_partitions needs at least one (inputs, labels) partition")
        class_weights = _class_weights(partitions, self.class_weight)
        n_inputs = partitions[0][0].shape[1]

        def local_fits(_round: int, vector: np.ndarray) -> list[LocalFit]:
            return [self._local_fit(vector, x, y, class_weights) for x, y in partitions]

        trace = run_rounds(
            self.aggregator,
            LogisticObjective(class_weights=class_weights),  # the penalty is applied in the local steps
            initial_vector(n_inputs, self.params, self.seed),
            local_fits,
            max_rounds=self.max_rounds,
            tolerance=self.tol,
        )
        self.model_ = MlpModel(trace.weights, n_inputs, self.params.hidden_units, self.params.activation)
        self.n_rounds_ = trace.rounds
        return self

    def _local_fit(self, vector: np.ndarray, inputs: np.ndarray, labels: np.ndarray, class_weights: tuple[float, float]) -> LocalFit:
        settings = {"epochs": self.local_epochs, "learning_rate": self.learning_rate, "proximal_mu": self.proximal_mu}
        if self.dp is None:
            return local_mlp_descent(vector, inputs, labels, class_weights, self.params, **settings)  # type: ignore[arg-type]
        from flute.privacy.dp.mechanisms import NoiseSource

        return dp_mlp_descent(vector, inputs, labels, class_weights, self.params, self.dp, NoiseSource.secure(), **settings)  # type: ignore[arg-type]

    def predict_proba(self, inputs: np.ndarray) -> np.ndarray:
        return _probabilities(self.model_.predict_risk(inputs))
