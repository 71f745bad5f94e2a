"""Pieces the VAE and the GAN share (F-HUF-11, F-HUF-13): their MLPs, the per-block activation of
a generated encoded row, and the categorical draw that turns generated logits into rows.

Why draw categories instead of taking the largest logit: the arg-max of a block decodes the
single most likely class for every latent point, so rare classes (a missing value, PI-RADS 3)
vanish from the samples and the marginals collapse; drawing from the softmax (Gumbel-max, the
encoder then decodes the perturbed block by its largest entry) reproduces the class shares.
Imported only where torch is (the model modules), never at plugin registration.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from flute.synth.neural.encoding import EncodedLayout


def mlp(sizes: Sequence[int], activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Linear layers of `sizes` with `activation` between them (none after the last): only
    Linear layers carry parameters, as Opacus' per-record gradients require."""
    layers: list[nn.Module] = []
    for index, (inputs, outputs) in enumerate(zip(sizes[:-1], sizes[1:])):
        if index:
            layers.append(activation())
        layers.append(nn.Linear(inputs, outputs))
    return nn.Sequential(*layers)


def block_slices(layout: EncodedLayout) -> list[slice]:
    """Where every one-hot block lies in an encoded row."""
    return [slice(block.start, block.start + block.size) for block in layout.blocks]


def soft_rows(raw: torch.Tensor, layout: EncodedLayout, temperature: float) -> torch.Tensor:
    """Generated logits as a differentiable encoded row: numeric scores as they are, every block a
    Gumbel-softmax sample (what a discriminator compares with real one-hots)."""
    parts = [raw[:, : len(layout.numeric)]]
    parts += [nn.functional.gumbel_softmax(raw[:, part], tau=temperature) for part in block_slices(layout)]
    return torch.cat(parts, dim=1)


def drawn_rows(raw: np.ndarray, layout: EncodedLayout, rng: np.random.Generator) -> np.ndarray:
    """Generated logits with every block Gumbel-perturbed, so the encoder's arg-max decoding draws
    each class with its softmax probability (see the module docstring)."""
    out = np.asarray(raw, dtype=np.float64).copy()
    for part in block_slices(layout):
        out[:, part] -= np.log(-np.log(rng.random((len(out), part.stop - part.start)) + 1e-300))
    return out


def seeded_normal(rows: int, width: int, rng: np.random.Generator) -> torch.Tensor:
    """Standard normal latent draws from the caller's numpy generator (reproducible per seed)."""
    return torch.as_tensor(rng.standard_normal((rows, width)), dtype=torch.float32)
