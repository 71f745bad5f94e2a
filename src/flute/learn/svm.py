"""Federated linear support vector machine (F-HUF-6): FedAvg/FedProx local steps on the hinge or
squared-hinge loss with an L2 penalty, then a federated Platt scaling fit.

Objective (the same at every hub and centrally; labels mapped to t = +-1):

    L(w) = (1 / S) * sum_i s_i * loss(t_i * f_i) + (l2 / 2) * ||coefficients||^2,  f = w0 + x.w

with loss(m) = max(0, 1 - m) ('hinge', subgradient steps) or max(0, 1 - m)^2 ('squared_hinge').
Hubs return locally trained weights (`LocalFit`), averaged by the aggregators of
`flute.learn.aggregation`, whose objective carries the shared penalty and class weights.

Probabilities: the decision function f is mapped to P(csPCa) = sigmoid(a * f + b) with (a, b)
fitted by federated Newton on the training rows' scores (hubs send gradient/Hessian sums of a
one-input logistic regression), so the SVM's risks can be calibrated and thresholded like any
other model's. AUROC depends only on the ranking, which the monotone map keeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Sequence

import numpy as np

from flute.learn.aggregation import Aggregator, NewtonAggregator
from flute.learn.logistic import LocalFit, LogisticObjective, NewtonSums, newton_sums, predict_probability, with_intercept
from flute.learn.training import LocalResults, TrainingTrace, run_rounds

HingeLoss = Literal["hinge", "squared_hinge"]


@dataclass(frozen=True)
class LinearSvmParams:
    loss: HingeLoss = "squared_hinge"
    l2: float = 0.01


def _loss_and_derivative(margins: np.ndarray, loss: HingeLoss) -> tuple[np.ndarray, np.ndarray]:
    """Per-row loss and its derivative with respect to the margin t * f."""
    slack = np.maximum(0.0, 1.0 - margins)
    if loss == "hinge":
        return slack, -(slack > 0).astype(np.float64)
    return slack * slack, -2.0 * slack


def local_svm_descent(
    global_weights: np.ndarray,
    inputs: np.ndarray,
    labels: np.ndarray,
    objective: LogisticObjective,
    loss: HingeLoss,
    *,
    epochs: int,
    learning_rate: float,
    proximal_mu: float = 0.0,
) -> LocalFit:
    """Hub-side FedAvg/FedProx step: `epochs` full-batch (sub)gradient steps on this hub's
    objective (+ (mu / 2) ||w - global||^2 for FedProx). `objective` supplies l2 and class weights."""
    design = with_intercept(inputs)
    signs = np.where(labels == 1, 1.0, -1.0)
    row_weights = objective.sample_weights(labels)
    weight_total = float(row_weights.sum())
    if weight_total <= 0:
        raise ValueError("this hub has no training rows for the requested fold")
    weights = global_weights.copy()
    loss_total = float(row_weights @ _loss_and_derivative(signs * (design @ global_weights), loss)[0])
    for _ in range(epochs):
        _, derivative = _loss_and_derivative(signs * (design @ weights), loss)
        gradient = design.T @ (row_weights * derivative * signs) / weight_total
        gradient += objective.penalty_gradient(weights) + proximal_mu * (weights - global_weights)
        weights = weights - learning_rate * gradient
    return LocalFit(weights, weight_total, loss_total)


def decision_function(weights: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    return with_intercept(inputs) @ weights


def platt_sums(platt: np.ndarray, weights: np.ndarray, inputs: np.ndarray, labels: np.ndarray) -> NewtonSums:
    """Hub-side Platt step: Newton sums of the logistic regression of the label on the SVM score."""
    scores = decision_function(weights, inputs)[:, None]
    return newton_sums(platt, scores, labels, LogisticObjective())


@dataclass(frozen=True)
class LinearSvmModel:
    """SVM weights (intercept first) and the Platt map (b, a) of its decision function. (Not
    called `weights`: these are not logistic weights, and must not pass for them.)"""

    svm_weights: np.ndarray
    platt: np.ndarray

    def predict_risk(self, inputs: np.ndarray) -> np.ndarray:
        return predict_probability(self.platt, decision_function(self.svm_weights, inputs)[:, None])


PlattResults = Callable[[int, np.ndarray], Sequence[NewtonSums]]
"""(round, Platt parameters) -> the hubs' Platt Newton sums for the trained SVM weights."""

PLATT_ROUNDS = 25
PLATT_TOLERANCE = 1e-9


def train_linear_svm(
    aggregator: Aggregator,
    objective: LogisticObjective,
    initial: np.ndarray,
    local_fits: LocalResults,
    platt_results: Callable[[np.ndarray], PlattResults],
    *,
    max_rounds: int,
    tolerance: float,
) -> tuple[LinearSvmModel, TrainingTrace]:
    """The coordinator's SVM loop: averaging rounds over `local_fits`, then federated Newton for
    the Platt map over `platt_results(weights)`. Local results may come from messages or from
    in-process partitions; the arithmetic is the same."""
    trace = run_rounds(aggregator, objective, initial, local_fits, max_rounds=max_rounds, tolerance=tolerance)
    platt = run_rounds(
        NewtonAggregator(), LogisticObjective(), np.zeros(2), platt_results(trace.weights), max_rounds=PLATT_ROUNDS, tolerance=PLATT_TOLERANCE
    )
    return LinearSvmModel(trace.weights, platt.weights), trace
