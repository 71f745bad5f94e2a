"""The torch side of the diffusion generator: the MLP denoiser, its training loss and the strided
DDIM sampler (imported only when a diffusion model trains or samples; see `diffusion`).

Model space: the encoded matrix with numeric normal scores as they are and every one-hot block
mapped to {-1, +1} ("analog bits", Chen et al. 2022). ONE Gaussian diffusion runs over all of it
(TabDDPM's linear noise schedule), the denoiser predicts the noise (epsilon), and a
categorical block decodes to its largest entry. Why not TabDDPM's multinomial diffusion for the
categoricals: with the few classes of clinical tables (<= 7 here) Gaussian diffusion on analog
one-hots fits them as well, and it keeps ONE deterministic sampler (DDIM, Song et al. 2021) whose
strided steps apply to every column - multinomial diffusion has no such strided deterministic
sampler, and the sampling speed target (thousands of rows/s on a CPU core) needs ~25 network
evaluations per batch, not ~1000.

Guidance while sampling (`Guidance` from the conditions): at every step the predicted clean
sample x0 is clipped to the valid range (one-hots to [-1, 1], normal scores to the condition's
interval), known blocks are imputed (their x0 set to the known one-hot), and the noise estimate is
recomputed from the clipped x0 before the DDIM update. The rejection sampler still checks every
row exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from flute.synth.neural.encoding import EncodedLayout, Guidance

#: Normal scores are clipped to this magnitude while sampling (the encoder's floor keeps real
#: scores well inside: |z| < 5 for tables of up to millions of rows).
Z_LIMIT = 6.0
TIME_FEATURES = 64


@dataclass(frozen=True)
class DiffusionArchitecture:
    """The denoiser and the diffusion process."""

    hidden: int = 128
    depth: int = 3
    timesteps: int = 1000
    sample_steps: int = 15

    def __post_init__(self) -> None:
        for name in ("hidden", "depth", "timesteps", "sample_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.sample_steps > self.timesteps:
            raise ValueError(f"sample_steps ({self.sample_steps}) cannot exceed timesteps ({self.timesteps})")


def alpha_bar(timesteps: int) -> torch.Tensor:
    """Cumulative signal share at t = 0 .. timesteps - 1 of TabDDPM's linear schedule (betas
    1e-4 .. 0.02 for 1000 steps, scaled to keep the same end point for other step counts).
    Measured here: the cosine schedule, whose last steps carry almost no signal, left the
    sampled normal scores ~1.5x too wide on PI-CAI (KS ~0.15 vs ~0.06 with this one)."""
    scale = 1000 / timesteps
    betas = torch.linspace(1e-4 * scale, min(0.02 * scale, 0.999), timesteps, dtype=torch.float64)
    return torch.cumprod(1 - betas, dim=0)


class Denoiser(nn.Module):
    """MLP eps(x_t, t): input and a sinusoidal timestep embedding are projected to `hidden`,
    added, and passed through `depth` SiLU layers (Linear layers only, as Opacus' per-record
    gradients require)."""

    def __init__(self, width: int, architecture: DiffusionArchitecture) -> None:
        super().__init__()
        self.timesteps = architecture.timesteps
        self.project_x = nn.Linear(width, architecture.hidden)
        self.project_t = nn.Sequential(nn.Linear(TIME_FEATURES, architecture.hidden), nn.SiLU(), nn.Linear(architecture.hidden, architecture.hidden))
        layers: list[nn.Module] = []
        for _ in range(architecture.depth):
            layers += [nn.SiLU(), nn.Linear(architecture.hidden, architecture.hidden)]
        self.body = nn.Sequential(*layers, nn.SiLU(), nn.Linear(architecture.hidden, width))

    def forward(self, noisy: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """`t`: one step per row, or a single step for every row (broadcast)."""
        return self.body(self.project_x(noisy) + self.project_t(_time_features(t, self.timesteps)))


def to_model_space(encoded: torch.Tensor, layout: EncodedLayout) -> torch.Tensor:
    """One-hot blocks to {-1, +1}; numeric scores unchanged."""
    out = encoded.clone()
    out[:, len(layout.numeric) :] = 2 * out[:, len(layout.numeric) :] - 1
    return out


class DiffusionLoss:
    """Per-row mean squared error of the predicted noise at a random step, averaged over the
    batch (the `LocalLoss` contract of `federated_fit`)."""

    def __init__(self, layout: EncodedLayout, architecture: DiffusionArchitecture) -> None:
        self.layout = layout
        self.signal = alpha_bar(architecture.timesteps).float()

    def __call__(self, module: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        clean = to_model_space(batch, self.layout)
        t = torch.randint(0, len(self.signal), (len(batch),))
        noise = torch.randn_like(clean)
        share = self.signal[t][:, None]
        noisy = share.sqrt() * clean + (1 - share).sqrt() * noise
        return ((module(noisy, t) - noise) ** 2).mean()


@torch.no_grad()
def ddim_sample(model: Denoiser, layout: EncodedLayout, architecture: DiffusionArchitecture, rows: int, seed: int, guidance: Guidance) -> np.ndarray:
    """`rows` model-space rows by deterministic DDIM over `sample_steps` strided steps."""
    generator = torch.Generator().manual_seed(seed)
    signal = alpha_bar(architecture.timesteps)
    steps = torch.linspace(architecture.timesteps - 1, 0, architecture.sample_steps).round().long()
    low, high = _clip_bounds(layout, guidance)
    known = torch.as_tensor(guidance.known_mask)
    known_values = torch.as_tensor(2 * guidance.known_values - 1, dtype=torch.float32)
    x = torch.randn(rows, layout.width, generator=generator)
    for index, t in enumerate(steps):
        share = float(signal[t])
        next_share = float(signal[steps[index + 1]]) if index + 1 < len(steps) else 1.0
        eps = model(x, t.reshape(1))  # one step for all rows: its embedding is computed once
        clean = (x - math.sqrt(1 - share) * eps) / math.sqrt(share)
        clean = torch.where(known, known_values, torch.clamp(clean, low, high))
        eps = (x - math.sqrt(share) * clean) / math.sqrt(1 - share)
        x = math.sqrt(next_share) * clean + math.sqrt(1 - next_share) * eps
    return x.double().numpy()


def _clip_bounds(layout: EncodedLayout, guidance: Guidance) -> tuple[torch.Tensor, torch.Tensor]:
    numeric = len(layout.numeric)
    low, high = torch.full((layout.width,), -1.0), torch.full((layout.width,), 1.0)
    # the valid range, narrowed by the conditions (a condition beyond the range wins: its rows
    # must stay reachable)
    low[:numeric] = torch.as_tensor(np.maximum(guidance.z_low, -Z_LIMIT), dtype=torch.float32)
    high[:numeric] = torch.as_tensor(np.minimum(guidance.z_high, Z_LIMIT), dtype=torch.float32)
    return low, torch.maximum(low, high)


def _time_features(t: torch.Tensor, timesteps: int) -> torch.Tensor:
    """Sinusoidal features of the step (no parameters), frequencies 1 .. timesteps."""
    half = TIME_FEATURES // 2
    frequencies = torch.exp(-math.log(timesteps) * torch.arange(half, dtype=torch.float32) / half)
    angles = t.float()[:, None] * frequencies[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
