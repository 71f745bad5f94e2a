"""DP-SGD randomness from FLUTE's cryptographic `NoiseSource` (URS-6/7/8, NF-PIL-5).

Why: Opacus draws its Poisson sampling and Gaussian noise from torch's generator (a Mersenne
Twister unless Opacus' `secure_mode`, which needs torchcsprng, an unmaintained package not
installed here). A seeded generator makes the noise predictable to whoever knows or recovers the seed, and
the DP guarantee assumes the adversary cannot predict the noise. Here both come from a ChaCha20
keystream (`flute.privacy.dp.mechanisms.NoiseSource`, keyed from the OS CSPRNG in production):

- `poisson_mask`: which of a hub's rows join one step (each independently with probability
  `rate`),
- `gaussian_like`: a noise tensor shaped like a gradient,
- `poisson_batches`: endless Poisson-sampled batches of a tensor of rows,
- `noise_source_optimizer`: Opacus' `DPOptimizer` (per-record clipping, noise, averaging by the
  expected batch) with its noise drawn from a `NoiseSource`.

The mechanism is unchanged (same noise multiplier, same sampling rate, floating-point Gaussian),
so the accounting in `flute.privacy.dp.accounting` applies as before; the floating-point
side-channel limitation noted in `mechanisms` applies likewise. torch and Opacus are imported
inside the functions: they are heavy and only DP training needs them.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import TYPE_CHECKING

from flute.privacy.dp.mechanisms import NoiseSource

if TYPE_CHECKING:
    import torch
    from opacus.optimizers import DPOptimizer


def poisson_mask(noise: NoiseSource, rows: int, rate: float) -> torch.Tensor:
    """A boolean mask over `rows` rows: each is True independently with probability `rate`."""
    import torch

    if not 0 < rate <= 1:
        raise ValueError(f"the Poisson sampling rate must lie in (0, 1], got {rate!r}")
    return torch.as_tensor(noise.uniform_open(rows) < rate)


def gaussian_like(noise: NoiseSource, reference: torch.Tensor, std: float) -> torch.Tensor:
    """N(0, std^2) noise with the shape and dtype of `reference` (float64 draws, then cast)."""
    import torch

    return torch.as_tensor(std * noise.standard_normal(tuple(reference.shape)), dtype=reference.dtype, device=reference.device)


def poisson_batches(rows: torch.Tensor, rate: float, noise: NoiseSource) -> Iterator[torch.Tensor]:
    """Endless Poisson-sampled batches of `rows` (a batch may be empty, as with Opacus'
    `DPDataLoader`): the sampling the subsampled-Gaussian accounting assumes."""
    while True:
        yield rows[poisson_mask(noise, len(rows), rate)]


def noise_source_optimizer(
    optimizer: torch.optim.Optimizer, *, noise: NoiseSource, noise_multiplier: float, max_grad_norm: float, expected_batch_size: int,
) -> DPOptimizer:
    """Opacus' `DPOptimizer` around `optimizer` (loss reduction "mean", flat clipping to
    `max_grad_norm`) whose Gaussian noise of std `noise_multiplier * max_grad_norm` comes from
    `noise`. The module must be wrapped in a `GradSampleModule`."""
    return _noise_source_optimizer_class()(
        optimizer, noise=noise, noise_multiplier=noise_multiplier, max_grad_norm=max_grad_norm,
        expected_batch_size=expected_batch_size, loss_reduction="mean",
    )


@cache
def _noise_source_optimizer_class() -> type[DPOptimizer]:
    """The subclass is built on first use so that importing this module does not import Opacus."""
    from opacus.optimizers import DPOptimizer
    from opacus.optimizers.optimizer import _check_processed_flag, _mark_as_processed

    class NoiseSourceDPOptimizer(DPOptimizer):
        """`DPOptimizer` with `add_noise` drawing from a `NoiseSource` instead of torch's
        generator (the rest - clipping, scaling, the step - is Opacus' own)."""

        def __init__(self, optimizer: torch.optim.Optimizer, *, noise: NoiseSource, **kwargs: object) -> None:
            super().__init__(optimizer, **kwargs)  # type: ignore[arg-type]
            self.noise_source = noise

        def add_noise(self) -> None:
            std = self.noise_multiplier * self.max_grad_norm
            for parameter in self.params:
                _check_processed_flag(parameter.summed_grad)
                parameter.grad = (parameter.summed_grad + gaussian_like(self.noise_source, parameter.summed_grad, std)).view_as(parameter)
                _mark_as_processed(parameter.summed_grad)

    return NoiseSourceDPOptimizer
