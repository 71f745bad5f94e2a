"""What every trained neural generator is around its network (the `FittedGenerator` protocol):
an encoder, a torch module, the marginal calibration of its numeric outputs, its hyperparameters
and provenance; exact conditional rows by guided rejection; saving as safetensors + JSON.

Subclasses say only how they draw decoded rows under a guidance (`_draw`): the diffusion model
runs its strided sampler, the latent models (VAE, GAN) one network pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from flute.synth.conditions import Condition
from flute.synth.marginal import SampleResult
from flute.synth.neural.calibration import MarginalCalibration
from flute.synth.neural.encoding import Guidance, TabularEncoder
from flute.synth.neural.persist import save_generator
from flute.synth.neural.rejection import sample_exactly
from flute.synth.schema import TableSchema

if TYPE_CHECKING:
    import pandas as pd
    import torch


class FittedNeuralGenerator:
    """Shared state and behaviour of the trained neural generators; `generator_name` is the
    plugin's name written into the saved directory (loading checks it)."""

    generator_name: str

    def __init__(
        self, encoder: TabularEncoder, model: torch.nn.Module, calibration: MarginalCalibration,
        hyperparameters: Mapping[str, Any], provenance: Mapping[str, Any],
    ) -> None:
        self.encoder = encoder
        self.model = model.eval()
        self.calibration = calibration
        self.hyperparameters = dict(hyperparameters)
        self._provenance = dict(provenance)

    @property
    def schema(self) -> TableSchema:
        return self.encoder.schema

    @property
    def provenance(self) -> Mapping[str, Any]:
        return self._provenance

    def sample(self, rows: int, rng: np.random.Generator, conditions: Sequence[Condition] = ()) -> SampleResult:
        return sample_exactly(self.encoder, self._draw, rows, rng, conditions)

    def save(self, directory: Path) -> None:
        save_generator(
            directory, generator=self.generator_name, weights=self.model.state_dict(), encoder=self.encoder,
            hyperparameters=self.hyperparameters, provenance=self._provenance, state={"calibration": self.calibration.to_json()},
        )

    def _draw(self, rows: int, rng: np.random.Generator, guidance: Guidance) -> pd.DataFrame:
        raise NotImplementedError
