"""A test generator plugged in through a workspace's `plugins` list (F-IMSD-17): it trains in
timed steps (reporting progress, honouring cancellation between steps) and then fits the
marginal generator, so jobs can be watched, cancelled and killed mid-training or mid-save."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flute.synth.conditions import Condition
from flute.synth.federated import SynthHub
from flute.synth.generators import TrainSettings, register
from flute.synth.marginal_plugin import PLUGIN as MARGINAL
from flute.synth.marginal import SampleResult
from flute.synth.marginal_plugin import SavedTreeModel
from flute.synth.schema import TableSchema

NAME = "slow-test"
TRAINING_MARKER = "training.started"


class SlowModel:
    """The marginal model, whose save waits `save_seconds` after writing its file (a window to
    kill the process while the generator is being saved)."""

    def __init__(self, model: SavedTreeModel, save_seconds: float) -> None:
        self.model = model
        self.save_seconds = save_seconds

    @property
    def schema(self) -> TableSchema:
        return self.model.schema

    @property
    def provenance(self) -> Mapping[str, Any]:
        return dict(self.model.provenance) | {"generator": NAME}

    def sample(self, rows: int, rng: np.random.Generator, conditions: Sequence[Condition] = ()) -> SampleResult:
        return self.model.sample(rows, rng, conditions)

    def save(self, directory: Path) -> None:
        self.model.save(directory)
        time.sleep(self.save_seconds)


class SlowPlugin:
    name = NAME
    description = "test generator: timed training steps, then the marginal model"

    def default_hyperparameters(self) -> dict[str, Any]:
        return {"steps": 10, "step_seconds": 0.05, "save_seconds": 0.0, "marker_dir": None}

    def train(self, hubs: Sequence[SynthHub], schema: TableSchema, settings: TrainSettings) -> SlowModel:
        values = self.default_hyperparameters() | dict(settings.hyperparameters)
        if values["marker_dir"]:
            (Path(values["marker_dir"]) / TRAINING_MARKER).touch()
        for step in range(values["steps"]):
            settings.check_cancelled()
            settings.progress(step / values["steps"], f"step {step + 1} of {values['steps']}")
            time.sleep(values["step_seconds"])
        settings.check_cancelled()
        fitted = MARGINAL.train(hubs, schema, TrainSettings(settings.study, settings.epsilon, settings.delta, {}))
        return SlowModel(fitted, float(values["save_seconds"]))

    def load(self, directory: Path) -> SavedTreeModel:
        return MARGINAL.load(directory)


PLUGIN = register(SlowPlugin())
