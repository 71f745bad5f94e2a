"""What the VAE and the GAN share as generators (F-IMSD-13/15/17): both draw an encoded row in ONE
network pass from a Gaussian latent (`model.generate(rows, rng, guidance)`), so everything around
that pass is the same and lives here once - training through `federated_fit`, marginal
calibration of the numeric outputs (`calibration`: post-processing, free under DP), exact
conditions by guided rejection (`rejection`), saving as safetensors + JSON (`persist`).

A model kind is a `LatentModelKind`: its name, its architecture dataclass, how to build the torch
module from (layout, architecture), and its default schedule. `LatentPlugin(kind)` is then the
`GeneratorPlugin` and `LatentGenerator` the `FittedGenerator`. torch is imported only when a
model trains, loads or samples, so registering a plugin is free.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from flute.synth.federated import SynthHub
from flute.synth.generators import GeneratorError, TrainSettings
from flute.synth.neural.calibration import CALIBRATION_ROWS, MarginalCalibration
from flute.synth.neural.encoding import EncodedLayout, Guidance, TabularEncoder
from flute.synth.neural.federated_fit import FitSchedule, fit_neural
from flute.synth.neural.fitted import FittedNeuralGenerator
from flute.synth.neural.hyperparameters import default_hyperparameters, effective_defaults, typed_hyperparameters
from flute.synth.neural.persist import load_generator
from flute.synth.schema import TableSchema

if TYPE_CHECKING:
    import pandas as pd
    import torch

#: The latent models' private regime (the part VAE and GAN share; each adds its latent width):
#: a small network and few rounds of large Poisson batches, measured best on PI-CAI at epsilon 1
#: and 3 (fewer noisy steps).
PRIVATE_REGIME: Mapping[str, Any] = {"rounds": 50, "local_steps": 1, "batch_size": 512, "server_learning_rate": 0.03, "hidden": 32, "depth": 1}
#: Rows per network batch while sampling (bounds memory; large enough to vectorise well).
SAMPLING_CHUNK = 100_000


class LatentModel(Protocol):
    """The torch module of a latent generator: forward(rows) = per-row training loss;
    `generate` = encoded rows (numeric scores raw, blocks Gumbel-perturbed logits)."""

    def generate(self, rows: int, rng: np.random.Generator, guidance: Guidance) -> np.ndarray: ...

    def eval(self) -> LatentModel: ...

    def state_dict(self) -> Mapping[str, torch.Tensor]: ...

    def load_state_dict(self, state: Mapping[str, torch.Tensor], strict: bool = True) -> Any: ...


@dataclass(frozen=True)
class LatentModelKind:
    """One kind of latent generator. `architecture` and `build` are loaded on first use (they
    live in the torch-importing model module)."""

    name: str
    description: str
    schedule: FitSchedule
    architecture: Callable[[], type]
    build: Callable[[EncodedLayout, Any], LatentModel]
    private_defaults: Mapping[str, Any]  # replace defaults under DP (`effective_defaults`)


class LatentGenerator(FittedNeuralGenerator):
    """A trained latent generator (the `FittedGenerator` protocol)."""

    def __init__(self, kind: LatentModelKind, encoder: TabularEncoder, model: LatentModel, calibration: MarginalCalibration, hyperparameters: Mapping[str, Any], provenance: Mapping[str, Any]) -> None:
        super().__init__(encoder, model, calibration, hyperparameters, provenance)  # type: ignore[arg-type]
        self.kind = kind
        self.generator_name = kind.name

    def _draw(self, rows: int, rng: np.random.Generator, guidance: Guidance) -> pd.DataFrame:
        raw = raw_rows(self.model, rows, rng, guidance)
        numeric = len(self.encoder.layout.numeric)
        raw[:, :numeric] = self.calibration.apply(raw[:, :numeric])
        return self.encoder.decode(raw)


def raw_rows(model: LatentModel, rows: int, rng: np.random.Generator, guidance: Guidance) -> np.ndarray:
    """Uncalibrated encoded rows, drawn in chunks of `SAMPLING_CHUNK`."""
    from flute.synth.neural.runtime import torch_module

    torch_module()
    return np.concatenate([model.generate(min(SAMPLING_CHUNK, rows - start), rng, guidance) for start in range(0, rows, SAMPLING_CHUNK)])


class LatentPlugin:
    """The `GeneratorPlugin` of one latent model kind."""

    def __init__(self, kind: LatentModelKind) -> None:
        self.kind = kind
        self.name = kind.name
        self.description = kind.description

    def default_hyperparameters(self) -> dict[str, Any]:
        return default_hyperparameters(self.kind.schedule, self.kind.architecture()())

    def train(self, hubs: Sequence[SynthHub], schema: TableSchema, settings: TrainSettings) -> LatentGenerator:
        schedule, architecture = self.resolved_hyperparameters(settings.hyperparameters, private=settings.epsilon is not None)
        settings.progress(0.0, f"training a {self.name} generator over {len(hubs)} hub(s)")
        fit = fit_neural(
            hubs, schema, settings, schedule, lambda layout: self.kind.build(layout, architecture), lambda layout: model_loss, generator_name=self.name,  # type: ignore[arg-type, return-value]
        )
        model: LatentModel = fit.model.eval()  # type: ignore[assignment]
        raw = raw_rows(model, CALIBRATION_ROWS, np.random.default_rng(int(fit.provenance["seed"])), fit.encoder.guidance(()))
        calibration = MarginalCalibration.fit(raw[:, : len(fit.encoder.layout.numeric)])
        hyperparameters = asdict(schedule) | asdict(architecture)
        return LatentGenerator(self.kind, fit.encoder, model, calibration, hyperparameters, fit.provenance | {"hyperparameters": hyperparameters})

    def load(self, directory: Path) -> LatentGenerator:
        saved = load_generator(directory, self.name)
        _, architecture = self.resolved_hyperparameters(saved.hyperparameters)
        model = self.kind.build(saved.encoder.layout, architecture)
        try:
            model.load_state_dict(saved.weights, strict=True)
            calibration = MarginalCalibration.from_json(saved.state["calibration"])
        except RuntimeError as exc:
            raise GeneratorError(f"{directory}: the saved weights do not fit the {self.name} architecture {architecture} ({exc})") from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise GeneratorError(f"{directory}: the saved {self.name} generator has no valid calibration ({exc})") from exc
        return LatentGenerator(self.kind, saved.encoder, model, calibration, saved.hyperparameters, saved.provenance)

    def resolved_hyperparameters(self, values: Mapping[str, Any], *, private: bool = False) -> tuple[FitSchedule, Any]:
        """The typed schedule and architecture of a request: its values, else the (private) defaults."""
        known = effective_defaults(self.default_hyperparameters(), self.kind.private_defaults, private)
        return typed_hyperparameters(values, FitSchedule, known, self.name), typed_hyperparameters(values, self.kind.architecture(), known, self.name)


def model_loss(module: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """The `LocalLoss` of `federated_fit` for every latent model: the batch mean of its per-row
    loss (its forward)."""
    return module(batch).mean()
