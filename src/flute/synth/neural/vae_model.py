"""The torch side of the tabular VAE (TVAE-like, Xu et al. 2019): the network, its per-row loss
and the decoder's draws (imported only when a VAE trains, loads or samples; see `vae`).

Input: the shared encoder's rows (`flute.synth.neural.encoding`): numeric columns as normal
scores of their federated quantiles (the quantile counterpart of TVAE's mode-specific
normalisation: skewed PSA and volume become Gaussian), then one-hot blocks. An MLP encoder gives
the mean and log-variance of a Gaussian latent; an MLP decoder gives, per numeric score, the mean
of a Gaussian of fixed standard deviation `numeric_sigma` (squared error weighted 1 / 2 sigma^2),
and per block the logits of a categorical (cross-entropy). The per-row loss is the negative ELBO:
reconstruction + `kl_weight` x KL(q(z|x) || N(0, I)) (below 1: the latent keeps more of
each row, so dependences between columns survive better, at some cost in closeness to records). Sampling decodes z ~ N(0, I): numeric means as they are,
each block drawn from its softmax (`layers.drawn_rows`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from flute.synth.neural.encoding import EncodedLayout, Guidance
from flute.synth.neural.layers import block_slices, drawn_rows, mlp, seeded_normal


@dataclass(frozen=True)
class VaeArchitecture:
    """Sizes of the VAE and the weight of its numeric reconstruction."""

    hidden: int = 128
    depth: int = 2
    latent: int = 16
    numeric_sigma: float = 0.5
    kl_weight: float = 0.5

    def __post_init__(self) -> None:
        for name in ("hidden", "depth", "latent"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not (np.isfinite(self.numeric_sigma) and self.numeric_sigma > 0):
            raise ValueError(f"numeric_sigma must be a finite number > 0, got {self.numeric_sigma!r}")
        if not (np.isfinite(self.kl_weight) and self.kl_weight > 0):
            raise ValueError(f"kl_weight must be a finite number > 0, got {self.kl_weight!r}")


class TabularVae(nn.Module):
    """forward(rows) = the per-row negative ELBO (what `federated_fit` averages and Opacus
    differentiates per record); `generate` = decoded logits of prior draws."""

    def __init__(self, layout: EncodedLayout, architecture: VaeArchitecture) -> None:
        super().__init__()
        self.layout = layout
        self.architecture = architecture
        hidden = [architecture.hidden] * architecture.depth
        self.encoder = mlp([layout.width, *hidden, 2 * architecture.latent])
        self.decoder = mlp([architecture.latent, *hidden, layout.width])

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        mean, log_variance = self.encoder(rows).chunk(2, dim=1)
        latent = mean + torch.randn_like(mean) * torch.exp(0.5 * log_variance)
        return reconstruction_loss(self.decoder(latent), rows, self.layout, self.architecture.numeric_sigma) + self.architecture.kl_weight * kl_to_standard_normal(mean, log_variance)

    @torch.no_grad()
    def generate(self, rows: int, rng: np.random.Generator, guidance: Guidance) -> np.ndarray:
        del guidance  # no conditional input: the rejection sampler checks every row
        raw = self.decoder(seeded_normal(rows, self.architecture.latent, rng)).double().numpy()
        return drawn_rows(raw, self.layout, rng)


def reconstruction_loss(raw: torch.Tensor, rows: torch.Tensor, layout: EncodedLayout, numeric_sigma: float) -> torch.Tensor:
    """Per row: Gaussian squared error of the numeric scores plus cross-entropy of every block."""
    numeric = len(layout.numeric)
    loss = ((raw[:, :numeric] - rows[:, :numeric]) ** 2).sum(dim=1) / (2 * numeric_sigma**2)
    for part in block_slices(layout):
        loss = loss + nn.functional.cross_entropy(raw[:, part], rows[:, part].argmax(dim=1), reduction="none")
    return loss


def kl_to_standard_normal(mean: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
    return -0.5 * (1 + log_variance - mean**2 - torch.exp(log_variance)).sum(dim=1)

