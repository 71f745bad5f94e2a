"""Federated multilayer perceptron (F-HUF-7) in PyTorch: one hidden layer, trained by
FedAvg/FedProx/FedAdam local steps on the class-weighted logistic loss with an L2 penalty on the
connection weights; optionally by record-level DP-SGD at each hub (`dp_mlp_descent`).

Parameters are one flat float64 vector (the form messages, results, `flute.learn.models` and
the packaged artifacts carry; torch is an implementation detail of the hub's local step):

    [W1 (n_inputs x hidden, row-major), b1 (hidden), w2 (hidden), b2]

Hubs run full-batch gradient steps from the global vector and return it with their weight total
(`LocalFit`), so one local epoch per round is exactly centralised gradient descent and a seeded
study repeats bit for bit (float64, one thread). The initial vector is drawn by the coordinator
from the study seed. torch and Opacus are imported inside the functions that need them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from flute.learn.logistic import LocalFit, LogisticObjective

if TYPE_CHECKING:
    import torch

    from flute.privacy.dp.mechanisms import NoiseSource

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

    def predict_risk(self, inputs: np.ndarray) -> np.ndarray:
        import torch

        network = _network(self.n_inputs, self.hidden_units, self.activation, self.vector)
        with torch.no_grad():
            logits = network(torch.as_tensor(np.asarray(inputs, dtype=np.float64))).squeeze(1)
        return torch.sigmoid(logits).numpy()


@dataclass(frozen=True)
class DpSgd:
    """Record-level DP-SGD of a hub's local steps: each step draws a Poisson sample (each row
    joins with probability `sampling_rate`), clips every row's loss gradient to L2 norm
    `max_grad_norm` and adds Gaussian noise of std `noise_multiplier * max_grad_norm` to their sum
    (`flute.privacy.dp.accounting.gaussian_sgd_cost` prices a run). An epoch is
    round(1 / sampling_rate) steps."""

    noise_multiplier: float
    max_grad_norm: float
    sampling_rate: float

    def __post_init__(self) -> None:
        if not (self.noise_multiplier > 0 and self.max_grad_norm > 0 and 0 < self.sampling_rate <= 1):
            raise ValueError(f"DP-SGD needs noise_multiplier > 0, max_grad_norm > 0 and sampling_rate in (0, 1], got {self}")

    @property
    def steps_per_epoch(self) -> int:
        return dp_sgd_steps_per_epoch(self.sampling_rate)


def dp_sgd_steps_per_epoch(sampling_rate: float) -> int:
    """DP-SGD steps in one local epoch: on average each row is sampled once per epoch."""
    return max(1, round(1.0 / sampling_rate))


def initial_vector(n_inputs: int, params: MlpParams, seed: int) -> np.ndarray:
    """Glorot-uniform weights and zero biases, drawn from the study seed."""
    rng = np.random.default_rng([seed, n_inputs, params.hidden_units])
    h = params.hidden_units
    first = rng.uniform(-1.0, 1.0, (n_inputs, h)) * np.sqrt(6.0 / (n_inputs + h))
    second = rng.uniform(-1.0, 1.0, h) * np.sqrt(6.0 / (h + 1))
    return np.concatenate([first.ravel(), np.zeros(h), second, [0.0]])


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
    """Hub-side step: `epochs` full-batch gradient steps on this hub's penalised loss (mean
    weighted loss + (l2 / 2) ||connection weights||^2, plus (mu / 2) ||v - global||^2 for FedProx).
    `loss_total` is the unpenalised weighted loss sum at the global vector."""
    import torch

    local = _LocalProblem(global_vector, inputs, labels, class_weights, params, proximal_mu)
    optimiser = torch.optim.SGD(local.network.parameters(), lr=learning_rate)
    for _ in range(epochs):
        optimiser.zero_grad()
        loss = local.data_loss(local.network(local.inputs).squeeze(1), local.labels, local.row_weights) / local.weight_total
        (loss + local.penalty()).backward()
        optimiser.step()
    return local.fit()


def dp_mlp_descent(
    global_vector: np.ndarray,
    inputs: np.ndarray,
    labels: np.ndarray,
    class_weights: tuple[float, float],
    params: MlpParams,
    dp: DpSgd,
    noise: NoiseSource,
    *,
    epochs: int,
    learning_rate: float,
    proximal_mu: float = 0.0,
) -> LocalFit:
    """Hub-side DP-SGD step (F-HUF-7, URS-6/7/8): `epochs * dp.steps_per_epoch` noisy steps.
    Per-row gradients come from Opacus (`GradSampleModule`); sampling and noise come from
    `noise` (a ChaCha20 stream, `flute.privacy.dp.secure_dp_sgd`), not torch's seeded generator.
    The noisy gradient sum is divided by the expected batch (sampling_rate x weight total); the
    penalty and proximal gradients depend on no record and are added exactly. The returned
    vector is post-processing of the DP-SGD run; `loss_total` is NaN (an exact loss would be a
    release the accounting does not cover)."""
    import torch
    from opacus import GradSampleModule

    from flute.privacy.dp.secure_dp_sgd import gaussian_like, poisson_mask

    local = _LocalProblem(global_vector, inputs, labels, class_weights, params, proximal_mu)
    sampled = GradSampleModule(local.network, loss_reduction="sum")
    parameters = list(local.network.parameters())
    expected_batch = dp.sampling_rate * local.weight_total
    n_rows = local.inputs.shape[0]
    for _ in range(epochs * dp.steps_per_epoch):
        batch = poisson_mask(noise, n_rows, dp.sampling_rate)
        for parameter in parameters:
            parameter.grad, parameter.grad_sample = None, None  # type: ignore[attr-defined]
        summed = [torch.zeros_like(parameter) for parameter in parameters]
        if bool(batch.any()):
            loss = local.data_loss(sampled(local.inputs[batch]).squeeze(1), local.labels[batch], local.row_weights[batch])
            with warnings.catch_warnings():
                # Opacus's per-row hooks are full backward hooks; the inputs need no gradient, which
                # torch reports on every call - expected here, not a problem.
                warnings.filterwarnings("ignore", message="Full backward hook is firing", category=UserWarning)
                loss.backward()
            per_row = torch.cat([p.grad_sample.reshape(int(batch.sum()), -1) for p in parameters], dim=1)  # type: ignore[attr-defined]
            scale = torch.clamp(dp.max_grad_norm / (per_row.norm(dim=1, keepdim=True) + 1e-12), max=1.0)
            clipped = (per_row * scale).sum(dim=0)
            summed = list(torch.split(clipped, [p.numel() for p in parameters]))
        with torch.no_grad():
            for parameter, total in zip(parameters, summed):
                clipped_sum = total.reshape(parameter.shape)
                parameter.grad = (clipped_sum + gaussian_like(noise, clipped_sum, dp.noise_multiplier * dp.max_grad_norm)) / expected_batch
        penalty_gradients = torch.autograd.grad(local.penalty(), parameters, allow_unused=True)
        with torch.no_grad():
            for parameter, extra in zip(parameters, penalty_gradients):
                step = parameter.grad if extra is None else parameter.grad + extra
                parameter -= learning_rate * step
    return LocalFit(local.vector(), local.weight_total, float("nan"))


# -- torch plumbing ---------------------------------------------------------------------------


def _network(n_inputs: int, hidden_units: int, activation: Activation, vector: np.ndarray) -> torch.nn.Sequential:
    """The torch module (float64) holding `vector` (layout of this module)."""
    import torch

    torch.set_num_threads(1)
    d, h = n_inputs, hidden_units
    if vector.shape != (n_parameters(d, h),):
        raise ValueError(f"an MLP with {d} inputs and {h} hidden units has {n_parameters(d, h)} parameters, got shape {vector.shape}")
    nonlinearity = torch.nn.Tanh() if activation == "tanh" else torch.nn.ReLU()
    network = torch.nn.Sequential(torch.nn.Linear(d, h), nonlinearity, torch.nn.Linear(h, 1)).double()
    first, second = network[0], network[2]
    with torch.no_grad():
        first.weight.copy_(torch.as_tensor(vector[: d * h].reshape(d, h).T))
        first.bias.copy_(torch.as_tensor(vector[d * h : d * h + h]))
        second.weight.copy_(torch.as_tensor(vector[d * h + h : d * h + 2 * h][None, :]))
        second.bias.copy_(torch.as_tensor(vector[-1:]))
    return network


def _vector(network: torch.nn.Sequential) -> np.ndarray:
    first, second = network[0], network[2]
    return np.concatenate(
        [
            first.weight.detach().numpy().T.ravel(),
            first.bias.detach().numpy(),
            second.weight.detach().numpy().ravel(),
            second.bias.detach().numpy(),
        ]
    ).astype(np.float64)


class _LocalProblem:
    """One hub's penalised loss around the global vector, as torch tensors."""

    def __init__(
        self,
        global_vector: np.ndarray,
        inputs: np.ndarray,
        labels: np.ndarray,
        class_weights: tuple[float, float],
        params: MlpParams,
        proximal_mu: float,
    ) -> None:
        import torch

        n_inputs = inputs.shape[1]
        self.network = _network(n_inputs, params.hidden_units, params.activation, global_vector)
        self.params, self.proximal_mu = params, proximal_mu
        weights = LogisticObjective(class_weights=class_weights).sample_weights(labels)
        self.weight_total = float(weights.sum())
        if self.weight_total <= 0:
            raise ValueError("this hub has no training rows for the requested fold")
        self.inputs = torch.as_tensor(np.asarray(inputs, dtype=np.float64))
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.float64))
        self.row_weights = torch.as_tensor(weights)
        self.anchor = [parameter.detach().clone() for parameter in self.network.parameters()]
        with torch.no_grad():
            self.loss_at_global = float(self.data_loss(self.network(self.inputs).squeeze(1), self.labels, self.row_weights))

    @staticmethod
    def data_loss(logits: torch.Tensor, labels: torch.Tensor, row_weights: torch.Tensor) -> torch.Tensor:
        """The class-weighted log loss summed over the rows."""
        import torch

        return torch.nn.functional.binary_cross_entropy_with_logits(logits, labels, weight=row_weights, reduction="sum")

    def penalty(self) -> torch.Tensor:
        """(l2 / 2) ||connection weights||^2 + (mu / 2) ||v - global||^2: no record enters it."""
        first, second = self.network[0], self.network[2]
        total = 0.5 * self.params.l2 * ((first.weight**2).sum() + (second.weight**2).sum())
        if self.proximal_mu > 0:
            drift = sum(((p - a) ** 2).sum() for p, a in zip(self.network.parameters(), self.anchor))
            total = total + 0.5 * self.proximal_mu * drift
        return total

    def vector(self) -> np.ndarray:
        return _vector(self.network)

    def fit(self) -> LocalFit:
        return LocalFit(self.vector(), self.weight_total, self.loss_at_global)
