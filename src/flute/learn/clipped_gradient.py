"""Federated gradient descent on per-record clipped gradients: the training scheme whose every
round has a record-level sensitivity bound, so it can be made differentially private.

Hub side (`clipped_gradient_rows`): each record's gradient of the class-weighted log loss,
s_i * (p_i - y_i) * x_i, is scaled down to an L2 norm of at most `clip_norm`; the hub sends the
sum of [WEIGHT_SCALE * s_i, clipped gradient_i] over its rows. Adding or removing one record
changes that sum by at most sqrt(clip_norm^2 + (WEIGHT_SCALE max s)^2) (`row_sensitivity`),
whatever the data: Gaussian noise of std `noise_multiplier * row_sensitivity` on it makes one
round (epsilon, delta)-DP (flute.privacy.dp). `ClippedGradientSums.from_vector` undoes the scale. Coordinator side (`ClippedGradientAggregator`): a step on the summed gradient divided by the
summed (class-weighted) row total, plus the l2 penalty - either a fixed learning rate, or scaled
by the inverse of the model's expected logistic curvature (`expected_logistic_curvature`, a
diagonal Newton step computed from the weights alone, so it costs no release). The hubs send
nothing else, so the loss is not known to the coordinator (reported as NaN).

Why the curvature step: under DP every round is a release, so fewer rounds mean less noise in
each. Plain gradient descent needs a hand-tuned rate and several rounds to move the intercept
to the log-odds of the prevalence; a diagonal Newton step on standardised inputs gets there in
one or two rounds with no tuning (on PI-CAI, simulated over 30 noise draws at epsilon 1: two
curvature steps give mean CV AUROC 0.878, four fixed-rate steps 0.872).

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


WEIGHT_SCALE = 0.25
"""The row total is hundreds of rows and only sets the step size, so its entry is scaled down:
the noise on a release is the same on every entry, and the gradient should carry most of the
sensitivity (clip_norm 1, class weights 1: sensitivity 1.03 instead of 1.41, i.e. half the noise
variance on the gradient; the total's relative noise stays a few percent)."""


@dataclass(frozen=True)
class ClippedGradientSums:
    """A round's summed clipped gradients and the row total they are divided by."""

    weight_total: float
    gradient: np.ndarray

    @classmethod
    def from_vector(cls, vector: np.ndarray) -> ClippedGradientSums:
        """From the summed rows of `clipped_gradient_rows`."""
        return cls(float(vector[0]) / WEIGHT_SCALE, vector[1:].copy())


def clipped_gradient_rows(
    weights: np.ndarray, inputs: np.ndarray, labels: np.ndarray, objective: LogisticObjective, clip_norm: float
) -> np.ndarray:
    """One row per record: [WEIGHT_SCALE * its class weight, its loss gradient clipped to L2 norm
    `clip_norm`]. Summed over the rows this is a hub's answer; a row's norm is at most
    `row_sensitivity`, the sum's record-level L2 sensitivity."""
    from flute.privacy.dp.mechanisms import clip_rows_l2

    design = with_intercept(inputs)
    probability = np.exp(-np.logaddexp(0.0, -(design @ weights)))
    row_weights = objective.sample_weights(labels)
    gradients = clip_rows_l2(design * (row_weights * (probability - labels))[:, None], clip_norm)
    return np.column_stack([WEIGHT_SCALE * row_weights, gradients])


def row_sensitivity(objective: LogisticObjective, clip_norm: float) -> float:
    """The L2 bound of one row of `clipped_gradient_rows`."""
    return float(np.hypot(clip_norm, WEIGHT_SCALE * max(objective.class_weights)))


#: Floor of the curvature a step divides by: the step stays bounded (at most 1 / MIN_CURVATURE
#: times the mean gradient) when a noisy round makes the model very confident (curvature -> 0).
MIN_CURVATURE = 0.05
_QUADRATURE_NODES = 20


def expected_logistic_curvature(weights: np.ndarray) -> float:
    """E[p (1 - p)] at logit w0 + w . x for standardised inputs x ~ N(0, I): the diagonal of the
    logistic Hessian per row, from the weights alone (inputs are standardised, their correlations
    are ignored). Gauss-Hermite quadrature over the logit's N(w0, |w|^2) distribution; at w = 0
    it is 1/4, the largest curvature of the logistic loss. Floored at MIN_CURVATURE."""
    nodes, node_weights = np.polynomial.hermite_e.hermegauss(_QUADRATURE_NODES)
    logits = weights[0] + float(np.linalg.norm(weights[1:])) * nodes
    probability = np.exp(-np.logaddexp(0.0, -logits))
    curvature = float(node_weights @ (probability * (1.0 - probability)) / node_weights.sum())
    return max(curvature, MIN_CURVATURE)


@dataclass(frozen=True)
class ClippedGradientAggregator:
    """w <- w - learning_rate * (summed clipped gradient / row total + penalty gradient), divided
    by (expected logistic curvature + l2) when `curvature_scaled` (a diagonal Newton step)."""

    learning_rate: float
    curvature_scaled: bool = False

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
        if self.curvature_scaled:
            step = step / (expected_logistic_curvature(weights) + objective.l2)
        return RoundOutcome(weights - step, float("nan"), float(np.max(np.abs(gradient)))), state
