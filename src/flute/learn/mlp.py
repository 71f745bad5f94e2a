"""Federated multilayer perceptron (F-HUF-7): one hidden layer, numpy only, trained by
FedAvg/FedProx/FedAdam local steps on the class-weighted logistic loss with an L2 penalty on the
connection weights.

Parameters are one flat vector (the form messages, results and `flute.learn.models` carry):

    [W1 (n_inputs x hidden, row-major), b1 (hidden), w2 (hidden), b2]

Hubs run full-batch gradient steps from the global vector and return it with their weight total
(`LocalFit`), so one local epoch per round is exactly centralised gradient descent and a seeded
study repeats bit for bit. The initial vector is drawn by the coordinator from the study seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from flute.learn.logistic import LocalFit, LogisticObjective

Activation = Literal["tanh", "relu"]


@dataclass(frozen=True)
class MlpParams:
    hidden_units: int = 8
    l2: float = 1e-3
    activation: Activation = "tanh"


def n_parameters(n_inputs: int, hidden_units: int) -> int:
    return n_inputs * hidden_units + 2 * hidden_units + 1


@dataclass(frozen=True)
class MlpModel:
    """A fitted one-hidden-layer network; `vector` in the layout of this module."""

    vector: np.ndarray
    n_inputs: int
    hidden_units: int
    activation: Activation

    def layers(self, vector: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """(W1, b1, w2, b2) of a vector in this network's layout."""
        d, h = self.n_inputs, self.hidden_units
        first = vector[: d * h].reshape(d, h)
        return first, vector[d * h : d * h + h], vector[d * h + h : d * h + 2 * h], float(vector[-1])

    def predict_risk(self, inputs: np.ndarray) -> np.ndarray:
        logits, _ = _forward(self, self.vector, inputs)
        return np.exp(-np.logaddexp(0.0, -logits))


def _activate(values: np.ndarray, activation: Activation) -> tuple[np.ndarray, np.ndarray]:
    """Activations and their derivatives."""
    if activation == "tanh":
        out = np.tanh(values)
        return out, 1.0 - out * out
    return np.maximum(values, 0.0), (values > 0).astype(np.float64)


def _forward(model: MlpModel, vector: np.ndarray, inputs: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    first, bias, second, _ = model.layers(vector)
    hidden, slope = _activate(inputs @ first + bias, model.activation)
    return hidden @ second + vector[-1], (hidden, slope)


def initial_vector(n_inputs: int, params: MlpParams, seed: int) -> np.ndarray:
    """Glorot-uniform weights and zero biases, drawn from the study seed."""
    rng = np.random.default_rng([seed, n_inputs, params.hidden_units])
    h = params.hidden_units
    first = rng.uniform(-1.0, 1.0, (n_inputs, h)) * np.sqrt(6.0 / (n_inputs + h))
    second = rng.uniform(-1.0, 1.0, h) * np.sqrt(6.0 / (h + 1))
    return np.concatenate([first.ravel(), np.zeros(h), second, [0.0]])


def _penalty_mask(n_inputs: int, hidden_units: int) -> np.ndarray:
    """1 on connection weights, 0 on biases: only weights are penalised."""
    mask = np.zeros(n_parameters(n_inputs, hidden_units))
    mask[: n_inputs * hidden_units] = 1.0
    mask[n_inputs * hidden_units + hidden_units : -1] = 1.0
    return mask


def local_mlp_descent(
    global_vector: np.ndarray,
    inputs: np.ndarray,
    labels: np.ndarray,
    class_weights: tuple[float, float],
    params: MlpParams,
    *,
    epochs: int,
    learning_rate: float,
    proximal_mu: float = 0.0,
) -> LocalFit:
    """Hub-side step: `epochs` full-batch gradient steps on this hub's penalised loss (plus
    (mu / 2) ||v - global||^2 for FedProx). `loss_total` is the unpenalised weighted loss sum at
    the global vector."""
    model = MlpModel(global_vector, inputs.shape[1], params.hidden_units, params.activation)
    row_weights = LogisticObjective(class_weights=class_weights).sample_weights(labels)
    weight_total = float(row_weights.sum())
    if weight_total <= 0:
        raise ValueError("this hub has no training rows for the requested fold")
    mask = _penalty_mask(inputs.shape[1], params.hidden_units)
    logits, _ = _forward(model, global_vector, inputs)
    loss_total = float(row_weights @ (np.logaddexp(0.0, logits) - labels * logits))
    vector = global_vector.copy()
    for _ in range(epochs):
        logits, (hidden, slope) = _forward(model, vector, inputs)
        residual = row_weights * (np.exp(-np.logaddexp(0.0, -logits)) - labels) / weight_total
        _, _, second, _ = model.layers(vector)
        back = np.outer(residual, second) * slope
        gradient = np.concatenate([(inputs.T @ back).ravel(), back.sum(axis=0), hidden.T @ residual, [residual.sum()]])
        gradient += params.l2 * mask * vector + proximal_mu * (vector - global_vector)
        vector = vector - learning_rate * gradient
    return LocalFit(vector, weight_total, loss_total)
