"""Coordinator-side aggregation of one training round, one class per federated strategy.

Each aggregator names the local step the hubs must run (`local_step`) and turns the hubs' results
into the next global weights. Optimiser state that must survive between rounds (FedAdam's moments)
is an explicit dict of arrays, so a coordinator can checkpoint it and resume bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol, Sequence

import numpy as np

from flute.learn.logistic import (
    ConvergenceError,
    LocalFit,
    LogisticObjective,
    NewtonSums,
    RoundOutcome,
    newton_update,
)

OptimiserState = dict[str, np.ndarray]


class LocalStep(str, Enum):
    """The hub-side computation a strategy needs."""

    NEWTON = "newton"
    GRADIENT_DESCENT = "gradient_descent"
    CLIPPED_GRADIENT = "clipped_gradient"


class Aggregator(Protocol):
    local_step: LocalStep

    def initial_state(self, weights: np.ndarray) -> OptimiserState: ...

    def aggregate(
        self, weights: np.ndarray, results: Sequence[NewtonSums] | Sequence[LocalFit], objective: LogisticObjective, state: OptimiserState
    ) -> tuple[RoundOutcome, OptimiserState]: ...


def pooled_newton_sums(results: Sequence[NewtonSums]) -> NewtonSums:
    """The hubs' Newton sums added up: gradient and Hessian sums are additive, so this is
    exactly what the pooled rows would give."""
    if not results:
        raise ConvergenceError("no hub results to aggregate")
    total = results[0]
    for sums in results[1:]:
        total = total + sums
    return total


class NewtonAggregator:
    """Federated Newton: summed gradient and Hessian give the pooled Newton step exactly."""

    local_step = LocalStep.NEWTON

    def initial_state(self, weights: np.ndarray) -> OptimiserState:
        return {}

    def aggregate(
        self, weights: np.ndarray, results: Sequence[NewtonSums], objective: LogisticObjective, state: OptimiserState
    ) -> tuple[RoundOutcome, OptimiserState]:
        return newton_update(weights, pooled_newton_sums(results), objective), state


def _weighted_average(fits: Sequence[LocalFit]) -> tuple[np.ndarray, float, float]:
    if not fits:
        raise ConvergenceError("no hub results to aggregate")
    weight_total = sum(fit.weight_total for fit in fits)
    average = sum(fit.weight_total * fit.weights for fit in fits) / weight_total
    loss_total = sum(fit.loss_total for fit in fits)
    return average, weight_total, loss_total


class AveragingAggregator:
    """FedAvg / FedProx (the proximal term is on the hub side): average of local weights, each
    hub weighted by its (class-weighted) row total."""

    local_step = LocalStep.GRADIENT_DESCENT

    def initial_state(self, weights: np.ndarray) -> OptimiserState:
        return {}

    def aggregate(
        self, weights: np.ndarray, results: Sequence[LocalFit], objective: LogisticObjective, state: OptimiserState
    ) -> tuple[RoundOutcome, OptimiserState]:
        average, weight_total, loss_total = _weighted_average(results)
        loss = loss_total / weight_total + objective.penalty(weights)
        return RoundOutcome(average, loss, float(np.max(np.abs(average - weights)))), state


@dataclass(frozen=True)
class FedAdamAggregator:
    """FedAdam (Reddi et al. 2021): the averaged update is a pseudo-gradient for a server-side
    Adam step with adaptivity `tau`."""

    learning_rate: float
    beta1: float
    beta2: float
    tau: float

    local_step = LocalStep.GRADIENT_DESCENT

    def initial_state(self, weights: np.ndarray) -> OptimiserState:
        return {"first_moment": np.zeros_like(weights), "second_moment": np.zeros_like(weights)}

    def aggregate(
        self, weights: np.ndarray, results: Sequence[LocalFit], objective: LogisticObjective, state: OptimiserState
    ) -> tuple[RoundOutcome, OptimiserState]:
        average, weight_total, loss_total = _weighted_average(results)
        delta = average - weights
        first = self.beta1 * state["first_moment"] + (1.0 - self.beta1) * delta
        second = self.beta2 * state["second_moment"] + (1.0 - self.beta2) * delta * delta
        updated = weights + self.learning_rate * first / (np.sqrt(second) + self.tau)
        loss = loss_total / weight_total + objective.penalty(weights)
        outcome = RoundOutcome(updated, loss, float(np.max(np.abs(updated - weights))))
        return outcome, {"first_moment": first, "second_moment": second}
