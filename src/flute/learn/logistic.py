"""Logistic regression split into hub-side local steps and coordinator-side aggregation (F-HUF-3).

Weights are one vector: intercept first, then one coefficient per model input. The objective,
identical in federated and centralised training, is

    L(w) = (1 / S) * sum_i s_i * logloss_i(w) + (l2 / 2) * ||coefficients||^2

where s_i is the class weight of row i and S the sum of the s_i over all participating rows. Hubs
return unpenalised SUMS over their rows; the coordinator adds them and applies the penalty once,
so the federated objective is exactly the pooled one.

Two local steps exist:
- `newton_sums`: gradient and Hessian sums at the current weights. Added over hubs they give the
  exact pooled Newton step: federated Newton reaches the centralised solution in a few rounds.
- `local_gradient_descent`: a few full-batch gradient steps on the hub's own objective (FedAvg;
  with a proximal term, FedProx). Deterministic, so a seeded run repeats bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class ConvergenceError(RuntimeError):
    """The optimisation cannot proceed (e.g. a singular Hessian); the message says what to change."""


@dataclass(frozen=True)
class LogisticObjective:
    """Penalty and class weights: the same numbers at every hub and at the coordinator."""

    l2: float = 0.0
    class_weights: tuple[float, float] = (1.0, 1.0)

    def sample_weights(self, labels: np.ndarray) -> np.ndarray:
        return np.where(labels == 1, self.class_weights[1], self.class_weights[0]).astype(np.float64)

    def penalty(self, weights: np.ndarray) -> float:
        return 0.5 * self.l2 * float(weights[1:] @ weights[1:])

    def penalty_gradient(self, weights: np.ndarray) -> np.ndarray:
        gradient = self.l2 * weights
        gradient[0] = 0.0  # the intercept is not penalised
        return gradient


def balanced_class_weights(n_positive: int, n_total: int) -> tuple[float, float]:
    """Weights n / (2 n_c) per class from GLOBAL counts (as scikit-learn's 'balanced')."""
    n_negative = n_total - n_positive
    if n_positive == 0 or n_negative == 0:
        raise ConvergenceError(
            f"class_weight 'balanced' needs both outcomes; the participating rows have {n_positive} csPCa and {n_negative} not"
        )
    return n_total / (2.0 * n_negative), n_total / (2.0 * n_positive)


def with_intercept(inputs: np.ndarray) -> np.ndarray:
    return np.hstack([np.ones((inputs.shape[0], 1)), inputs])


def predict_probability(weights: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """P(csPCa) per row; numerically stable for large |logit|."""
    logits = with_intercept(inputs) @ weights
    return np.exp(-np.logaddexp(0.0, -logits))


def _log_loss_terms(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    # -[y log p + (1-y) log(1-p)] = log(1 + e^z) - y z, computed without overflow.
    return np.logaddexp(0.0, logits) - labels * logits


def zero_weights(n_inputs: int) -> np.ndarray:
    return np.zeros(n_inputs + 1, dtype=np.float64)


@dataclass(frozen=True)
class NewtonSums:
    """Additive sums of one Newton round over some rows (unpenalised)."""

    weight_total: float
    loss_total: float
    gradient: np.ndarray
    hessian: np.ndarray

    def __add__(self, other: NewtonSums) -> NewtonSums:
        return NewtonSums(
            self.weight_total + other.weight_total,
            self.loss_total + other.loss_total,
            self.gradient + other.gradient,
            self.hessian + other.hessian,
        )


def newton_sums(weights: np.ndarray, inputs: np.ndarray, labels: np.ndarray, objective: LogisticObjective) -> NewtonSums:
    """Hub-side Newton step: weighted loss, gradient and Hessian sums at `weights`."""
    design = with_intercept(inputs)
    logits = design @ weights
    probability = np.exp(-np.logaddexp(0.0, -logits))
    row_weights = objective.sample_weights(labels)
    curvature = row_weights * probability * (1.0 - probability)
    return NewtonSums(
        weight_total=float(row_weights.sum()),
        loss_total=float(row_weights @ _log_loss_terms(logits, labels)),
        gradient=design.T @ (row_weights * (probability - labels)),
        hessian=(design * curvature[:, None]).T @ design,
    )


@dataclass(frozen=True)
class RoundOutcome:
    """What one aggregation produced: the next weights, the objective at the weights the round
    started from, and the size of the step (gradient or update norm) that decides convergence."""

    weights: np.ndarray
    loss: float
    step_norm: float


def newton_update(weights: np.ndarray, sums: NewtonSums, objective: LogisticObjective) -> RoundOutcome:
    """Coordinator-side Newton step from the hubs' summed `NewtonSums`."""
    if sums.weight_total <= 0:
        raise ConvergenceError("no rows took part in this Newton round")
    gradient = sums.gradient / sums.weight_total + objective.penalty_gradient(weights)
    hessian = sums.hessian / sums.weight_total + objective.l2 * np.diag(np.r_[0.0, np.ones(weights.shape[0] - 1)])
    try:
        step = np.linalg.solve(hessian, gradient)
    except np.linalg.LinAlgError as exc:
        raise ConvergenceError(
            "the Hessian is singular (perfectly separated classes or collinear inputs); set model.l2 > 0"
        ) from exc
    loss = sums.loss_total / sums.weight_total + objective.penalty(weights)
    return RoundOutcome(weights - step, loss, float(np.max(np.abs(gradient))))


@dataclass(frozen=True)
class LocalFit:
    """A hub's locally trained weights (FedAvg/FedProx) with the weight total it speaks for and its
    objective at the global weights it started from."""

    weights: np.ndarray
    weight_total: float
    loss_total: float


def local_gradient_descent(
    global_weights: np.ndarray,
    inputs: np.ndarray,
    labels: np.ndarray,
    objective: LogisticObjective,
    *,
    epochs: int,
    learning_rate: float,
    proximal_mu: float = 0.0,
) -> LocalFit:
    """Hub-side FedAvg/FedProx step: `epochs` full-batch gradient steps on this hub's objective,
    plus (mu / 2) * ||w - global||^2 for FedProx."""
    design = with_intercept(inputs)
    row_weights = objective.sample_weights(labels)
    weight_total = float(row_weights.sum())
    if weight_total <= 0:
        raise ConvergenceError("this hub has no training rows for the requested fold")
    weights = global_weights.copy()
    loss_total = float(row_weights @ _log_loss_terms(design @ global_weights, labels))
    for _ in range(epochs):
        probability = np.exp(-np.logaddexp(0.0, -(design @ weights)))
        gradient = design.T @ (row_weights * (probability - labels)) / weight_total
        gradient += objective.penalty_gradient(weights) + proximal_mu * (weights - global_weights)
        weights = weights - learning_rate * gradient
    return LocalFit(weights, weight_total, loss_total)
