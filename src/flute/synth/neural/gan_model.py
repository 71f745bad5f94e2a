"""The torch side of the conditional tabular GAN (CTGAN-like, Xu et al. 2019): generator and
discriminator MLPs in ONE module whose forward is a per-row loss, so the shared federated trainer
(`federated_fit`: FedAvg, secure aggregation, Opacus DP-SGD) trains it like any other model
(imported only when a GAN trains, loads or samples; see `gan`).

Conditional vector and training-by-sampling: every training row picks one of the encoder's
one-hot blocks at random (or, with probability `unconditional_share`, none) and its own class in
that block becomes the condition c (a vector over all blocks, zero outside the chosen one).
The generator draws a row from (z, c); the discriminator judges (row, c) pairs, real against
generated; a cross-entropy term makes the generated block agree with c. Sampling without
conditions uses c = 0 (the unconditional mode); a request that fixes a block's class (csPCa = 1,
centre = ZGT) sets c to it, so most drawn rows already meet it and guided rejection keeps the
exact ones.

One backward pass per step (simultaneous gradient play with Adam): the per-row loss is the
discriminator's loss on (real, generated-and-detached) plus the generator's loss on the
generated row scored by the discriminator with DETACHED weights (plain functional calls, no
module hooks), so each network only gets the gradient of its own objective. Under DP, Opacus
clips and noises the per-record gradient of the whole module: a record's influence (its real
row, its class as condition) is bounded by the clipping norm, so the guarantee covers both
networks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from flute.synth.neural.encoding import EncodedLayout, Guidance
from flute.synth.neural.layers import block_slices, drawn_rows, mlp, seeded_normal, soft_rows


@dataclass(frozen=True)
class GanArchitecture:
    """Sizes of the two networks and the shape of the conditional training."""

    hidden: int = 256
    depth: int = 2
    noise: int = 32
    temperature: float = 0.2
    unconditional_share: float = 0.8
    condition_weight: float = 1.0
    dropout: float = 0.5

    def __post_init__(self) -> None:
        for name in ("hidden", "depth", "noise"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not (np.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature must be a finite number > 0, got {self.temperature!r}")
        if not 0 <= self.unconditional_share <= 1:
            raise ValueError(f"unconditional_share must lie in [0, 1], got {self.unconditional_share!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout!r}")
        if not (np.isfinite(self.condition_weight) and self.condition_weight >= 0):
            raise ValueError(f"condition_weight must be a finite number >= 0, got {self.condition_weight!r}")


class ConditionalGan(nn.Module):
    """forward(rows) = per-row discriminator + generator loss (see the module docstring);
    `generate(rows, rng, guidance)` = drawn encoded rows."""

    def __init__(self, layout: EncodedLayout, architecture: GanArchitecture) -> None:
        super().__init__()
        self.layout = layout
        self.architecture = architecture
        self.blocks = block_slices(layout)
        self.numeric = len(layout.numeric)
        conditions = layout.width - self.numeric
        hidden = [architecture.hidden] * architecture.depth
        self.generator = mlp([architecture.noise + conditions, *hidden, layout.width])
        self.discriminator = _discriminator(layout.width + conditions, architecture)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        condition, chosen = self._training_conditions(rows)
        raw = self.generator(torch.cat([torch.randn(len(rows), self.architecture.noise), condition], dim=1))
        generated = soft_rows(raw, self.layout, self.architecture.temperature)
        real_score = self.discriminator(torch.cat([rows, condition], dim=1))[:, 0]
        fake_score = self.discriminator(torch.cat([generated.detach(), condition], dim=1))[:, 0]
        discriminator_loss = nn.functional.softplus(-real_score) + nn.functional.softplus(fake_score)
        judged = _frozen_forward(self.discriminator, torch.cat([generated, condition], dim=1))[:, 0]
        generator_loss = nn.functional.softplus(-judged) + self.architecture.condition_weight * self._condition_loss(raw, condition, chosen)
        return discriminator_loss + generator_loss

    @torch.no_grad()
    def generate(self, rows: int, rng: np.random.Generator, guidance: Guidance) -> np.ndarray:
        condition = torch.zeros(rows, self.layout.width - self.numeric)
        for part in self.blocks:  # the first block the request fixes conditions the generator
            if guidance.known_mask[part].all():
                condition[:, part.start - self.numeric : part.stop - self.numeric] = torch.as_tensor(guidance.known_values[part], dtype=torch.float32)
                break
        raw = self.generator(torch.cat([seeded_normal(rows, self.architecture.noise, rng), condition], dim=1)).double().numpy()
        return drawn_rows(raw, self.layout, rng)

    def _training_conditions(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each row's condition (its own class in one random block, or none) and the chosen
        block's index (-1: none)."""
        chosen = torch.randint(0, len(self.blocks), (len(rows),))
        chosen = torch.where(torch.rand(len(rows)) < self.architecture.unconditional_share, torch.full_like(chosen, -1), chosen)
        mask = torch.zeros(len(rows), self.layout.width - self.numeric)
        for index, part in enumerate(self.blocks):
            mask[chosen == index, part.start - self.numeric : part.stop - self.numeric] = 1.0
        return rows[:, self.numeric :] * mask, chosen

    def _condition_loss(self, raw: torch.Tensor, condition: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the generated chosen block against the condition's class."""
        loss = torch.zeros(len(raw))
        for index, part in enumerate(self.blocks):
            rows = chosen == index
            target = condition[:, part.start - self.numeric : part.stop - self.numeric].argmax(dim=1)
            loss = loss + torch.where(rows, nn.functional.cross_entropy(raw[:, part], target, reduction="none"), torch.zeros_like(loss))
        return loss


def _discriminator(inputs: int, architecture: GanArchitecture) -> nn.Sequential:
    """CTGAN's discriminator: Linear, LeakyReLU(0.2), Dropout per hidden layer (dropout keeps it
    from memorising a small table, which would also pull the generator towards the records)."""
    layers: list[nn.Module] = []
    for size in [inputs] + [architecture.hidden] * (architecture.depth - 1):
        layers += [nn.Linear(size, architecture.hidden), nn.LeakyReLU(0.2), nn.Dropout(architecture.dropout)]
    return nn.Sequential(*layers, nn.Linear(architecture.hidden, 1))


def _frozen_forward(network: nn.Sequential, inputs: torch.Tensor) -> torch.Tensor:
    """`network` applied with its weights detached and without calling its modules (so no
    gradient, and no per-record hook, reaches the discriminator from the generator's loss)."""
    out = inputs
    for layer in network:
        if isinstance(layer, nn.Linear):
            out = nn.functional.linear(out, layer.weight.detach(), layer.bias.detach())
        elif isinstance(layer, nn.Dropout):
            out = nn.functional.dropout(out, layer.p, network.training)
        else:
            out = layer(out)
    return out

