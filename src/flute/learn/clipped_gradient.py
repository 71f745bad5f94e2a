"""Federated gradient descent on per-record clipped gradients: the training scheme whose every
round has a record-level sensitivity bound, so it can be made differentially private.

Hub side (`clipped_gradient_rows`): each record's gradient of the class-weighted log loss,
s_i * (p_i - y_i) * x_i, is scaled down to an L2 norm of at most `clip_norm`; the hub sends the
sum of [s_i, clipped gradient_i] over its rows. Adding or removing one record changes that sum by
at most sqrt(clip_norm^2 + max s^2) (`row_sensitivity`), whatever the data: Gaussian noise of std
`noise_multiplier * row_sensitivity` on it makes one round (epsilon, delta)-DP
(flute.privacy.dp). Coordinator side (`ClippedGradientAggregator`): a plain gradient step on the
summed gradient divided by the summed (class-weighted) row total, plus the l2 penalty. The hubs
send nothing else, so the loss is not known to the coordinator (reported as NaN).

Why not Newton: a per-record Hessian term has no small data-independent bound on standardised
inputs, and a noisy Hessian can be indefinite; clipped gradients are the standard sound scheme
(noisy full-batch gradient descent).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from flute.learn.aggregation import LocalStep, OptimiserState
from flute.learn.logistic import ConvergenceError, LogisticObjective, RoundOutcome, with_intercept


@dataclass(frozen=True)
class ClippedGradientSums:
    """A round's summed clipped gradients and the row total they are divided by."""

    weight_total: float
    gradient: np.ndarray


def clipped_gradient_rows(
    weights: np.ndarray, inputs: np.ndarray, labels: np.ndarray, objective: LogisticObjective, clip_norm: float
) -> np.ndarray:
    """One row per record: [its class weight, its loss gradient clipped to L2 norm `clip_norm`].
    Summed over the rows this is a hub's answer; a row's norm is at most
    sqrt(clip_norm^2 + max class weight^2), the sum's record-level L2 sensitivity."""
    from flute.privacy.dp.mechanisms import clip_rows_l2

    design = with_intercept(inputs)
    probability = np.exp(-np.logaddexp(0.0, -(design @ weights)))
    row_weights = objective.sample_weights(labels)
    gradients = clip_rows_l2(design * (row_weights * (probability - labels))[:, None], clip_norm)
    return np.column_stack([row_weights, gradients])


def row_sensitivity(objective: LogisticObjective, clip_norm: float) -> float:
    """The L2 bound of one row of `clipped_gradient_rows`."""
    return float(np.hypot(clip_norm, max(objective.class_weights)))


@dataclass(frozen=True)
class ClippedGradientAggregator:
    """w <- w - learning_rate * (summed clipped gradient / row total + penalty gradient)."""

    learning_rate: float

    local_step = LocalStep.CLIPPED_GRADIENT

    def initial_state(self, weights: np.ndarray) -> OptimiserState:
        return {}

    def aggregate(
        self, weights: np.ndarray, results: Sequence[ClippedGradientSums], objective: LogisticObjective, state: OptimiserState
    ) -> tuple[RoundOutcome, OptimiserState]:
        if not results:
            raise ConvergenceError("no hub results to aggregate")
        weight_total = sum(result.weight_total for result in results)
        if not weight_total > 0:
            raise ConvergenceError("no rows took part in this gradient round")
        gradient = sum(result.gradient for result in results) / weight_total + objective.penalty_gradient(weights)
        step = self.learning_rate * gradient
        return RoundOutcome(weights - step, float("nan"), float(np.max(np.abs(gradient)))), state
