"""The marginal generator as a `GeneratorPlugin` named "marginal" (F-IMSD-17, F-IMSD-13/15).

A thin adapter: hyperparameters are checked and typed into a `MarginalConfig`, training is
`flute.synth.train.train_marginal`, and a saved generator is the model's JSON (`model.json`) in
the directory `FittedGenerator.save` is given - so a model written by `flute synth train --out`
and one saved in the workspace are the same file.

Hyperparameters (all optional):
- `tree`: declared structure, a list of [column, column] pairs (default: selected, MST);
- `selection_share`: share of the budget that selects the tree (DP, undeclared tree);
- `tolerated_colluders`, `tolerated_dropouts`: the distributed-noise trust assumption.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from flute.synth.budget import DEFAULT_SELECTION_SHARE, MarginalBudget
from flute.synth.federated import SynthHub
from flute.synth.generators import GeneratorError, TrainSettings, register
from flute.synth.marginal import ModelError, TreeModel
from flute.synth.schema import TableSchema
from flute.synth.train import MarginalConfig, train_marginal

MODEL_FILE = "model.json"
NAME = "marginal"


class SavedTreeModel(TreeModel):
    """A TreeModel that saves itself into a directory (the `FittedGenerator` protocol)."""

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / MODEL_FILE).write_text(self.to_json(), encoding="utf-8")


class MarginalPlugin:
    name = NAME
    description = "tree-shaped graphical model fitted from noisy 2-way marginals (MST-style); the workhorse under tight budgets"

    def default_hyperparameters(self) -> dict[str, Any]:
        return {"tree": None, "selection_share": DEFAULT_SELECTION_SHARE, "tolerated_colluders": 0, "tolerated_dropouts": 0}

    def train(self, hubs: Sequence[SynthHub], schema: TableSchema, settings: TrainSettings) -> SavedTreeModel:
        config = self.config(settings)
        settings.check_cancelled()
        settings.progress(0.0, f"measuring marginals at {len(hubs)} hub(s)")
        model = train_marginal(hubs, schema, config)
        settings.progress(1.0, "tree model fitted")
        return _saved(model)

    def load(self, directory: Path) -> SavedTreeModel:
        path = directory / MODEL_FILE if directory.is_dir() else directory
        try:
            return _saved(TreeModel.from_json(path.read_text(encoding="utf-8"), source=str(path)))
        except FileNotFoundError as exc:
            raise GeneratorError(f"{directory}: no {MODEL_FILE}; not a saved marginal generator") from exc
        except ModelError as exc:
            raise GeneratorError(str(exc)) from exc

    def config(self, settings: TrainSettings) -> MarginalConfig:
        """The typed training config of `settings` (unknown or ill-typed hyperparameters refused)."""
        values = self.default_hyperparameters() | dict(settings.hyperparameters)
        unknown = sorted(set(values) - set(self.default_hyperparameters()))
        if unknown:
            raise GeneratorError(f"marginal: unknown hyperparameter(s) {unknown}; known: {sorted(self.default_hyperparameters())}")
        try:
            share = float(values["selection_share"])
            colluders, dropouts = _count(values, "tolerated_colluders"), _count(values, "tolerated_dropouts")
            budget = None if settings.epsilon is None else MarginalBudget(settings.epsilon, settings.delta, share)
        except ValueError as exc:
            raise GeneratorError(f"marginal: {exc}") from exc
        return MarginalConfig(settings.study, budget, _tree(values["tree"]), colluders, dropouts)


def _count(values: Mapping[str, Any], key: str) -> int:
    value = values[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key} must be an integer >= 0, got {value!r}")
    return value


def _tree(value: Any) -> tuple[tuple[str, str], ...] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not all(isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(c, str) for c in p) for p in value):
        raise GeneratorError(f"marginal: tree must be a list of [column, column] pairs, got {value!r}")
    return tuple((a, b) for a, b in value)


def _saved(model: TreeModel) -> SavedTreeModel:
    return SavedTreeModel(model.schema, model.parents, model.root_marginal, model.conditionals, model.provenance)


PLUGIN = register(MarginalPlugin())
