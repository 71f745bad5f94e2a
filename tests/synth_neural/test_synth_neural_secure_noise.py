"""The DP-SGD of the neural generators draws its Poisson sampling and Gaussian noise from FLUTE's
ChaCha20 `NoiseSource`, not from torch's seeded generator (URS-6/7/8, NF-PIL-5, F-IMSD-13), with
real Opacus: the optimiser's noise is exactly the source's draws at std noise_multiplier x
max_grad_norm, and a federated DP training with a fixed torch seed changes with the source."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from flute.privacy.dp.mechanisms import NoiseSource
from flute.privacy.dp.secure_dp_sgd import noise_source_optimizer, poisson_batches, poisson_mask
from flute.synth.federated import SynthHub
from flute.synth.generators import TrainSettings
from flute.synth.neural.federated_fit import FitSchedule, fit_neural
from flute.synth.schema import TableSchema, study_schema

from .conftest import CENTRES


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")  # Opacus: the input needs no gradient
def test_optimizer_noise_is_the_sources_draws_at_the_calibrated_std() -> None:
    import torch
    from opacus import GradSampleModule

    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    module = GradSampleModule(layer, loss_reduction="mean")
    multiplier, clip, expected_batch = 1.3, 0.7, 4
    optimizer = noise_source_optimizer(
        torch.optim.SGD(layer.parameters(), lr=1.0), noise=NoiseSource.deterministic_for_tests(5),
        noise_multiplier=multiplier, max_grad_norm=clip, expected_batch_size=expected_batch,
    )
    before = [p.detach().clone() for p in layer.parameters()]
    optimizer.zero_grad()
    (0.0 * module(torch.ones(expected_batch, 3)).sum()).backward()  # clipped gradients are all zero
    optimizer.step()
    replay = NoiseSource.deterministic_for_tests(5)
    for parameter, start in zip(layer.parameters(), before):
        expected = multiplier * clip * replay.standard_normal(tuple(parameter.shape)) / expected_batch
        np.testing.assert_allclose((start - parameter.detach()).numpy(), expected, rtol=1e-5, atol=1e-7)


def test_poisson_batches_follow_the_source_and_the_rate() -> None:
    import torch

    rows = torch.arange(20_000.0).reshape(-1, 1)
    first = next(poisson_batches(rows, 0.05, NoiseSource.deterministic_for_tests(3)))
    again = next(poisson_batches(rows, 0.05, NoiseSource.deterministic_for_tests(3)))
    other = next(poisson_batches(rows, 0.05, NoiseSource.deterministic_for_tests(4)))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert 850 < len(first) < 1150  # Binomial(20000, 0.05): mean 1000, sd ~31
    assert bool(poisson_mask(NoiseSource.secure(), 50, 1.0).all())
    with pytest.raises(ValueError, match=r"rate must lie in \(0, 1\]"):
        poisson_mask(NoiseSource.secure(), 5, 0.0)


def _categorical_hubs() -> list[SynthHub]:
    """Hubs with categorical columns only: no numeric histogram release, so DP-SGD is the only
    consumer of the noise source. Equal sizes: one sampling rate, one (slow) noise calibration."""
    rng = np.random.default_rng(8)
    hubs = []
    for name in CENTRES:
        pirads = rng.integers(1, 6, 60)
        hubs.append(SynthHub(name, pd.DataFrame({"pirads": pirads, "centre": name, "csPCa": (rng.random(60) < 0.1 * pirads).astype(int)})))
    return hubs


def _dp_weights(hubs: list[SynthHub], schema: TableSchema, noise: Callable[[], NoiseSource] | None) -> list[float]:
    from flute.synth.neural.diffusion_model import Denoiser, DiffusionArchitecture, DiffusionLoss

    architecture = DiffusionArchitecture(hidden=8, depth=1, timesteps=20)
    settings = TrainSettings("neural-secure-noise", epsilon=1.0, delta=1e-6, seed=3)
    schedule = FitSchedule(rounds=2, local_steps=2, batch_size=32)
    extra = {} if noise is None else {"noise": noise}
    fit = fit_neural(
        hubs, schema, settings, schedule, lambda layout: Denoiser(layout.width, architecture),
        lambda layout: DiffusionLoss(layout, architecture), generator_name="diffusion", **extra,
    )
    assert fit.provenance["mode"] == "dp" and fit.provenance["seed"] == 3
    return [value for tensor in fit.model.state_dict().values() for value in tensor.flatten().tolist()]


@pytest.mark.slow
def test_dp_training_noise_comes_from_the_supplied_source_not_the_torch_seed() -> None:
    hubs = _categorical_hubs()
    schema = study_schema(("pirads",), CENTRES)
    seeded = _dp_weights(hubs, schema, lambda: NoiseSource.deterministic_for_tests(1))
    assert _dp_weights(hubs, schema, lambda: NoiseSource.deterministic_for_tests(1)) == seeded
    other = _dp_weights(hubs, schema, lambda: NoiseSource.deterministic_for_tests(2))
    assert other != seeded  # same torch seed, different source: different sampling and noise
    assert _dp_weights(hubs, schema, None) not in (seeded, other)  # default: a fresh NoiseSource.secure
