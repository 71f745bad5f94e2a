"""Saving and loading a trained neural generator without pickle (F-IMSD-15, F-IMSD-17).

A saved generator is a directory with two files: `weights.safetensors` (the model's parameters,
safetensors: plain tensors, nothing executable) and `generator.json` (format, generator name,
the encoder with its schema and quantiles, the hyperparameters, the provenance with the privacy
guarantee, and `state`: whatever JSON the model keeps besides its weights, e.g. its calibration). Loading checks the format and the generator name, and the model code checks
that the tensors fit its architecture (`load_state_dict(strict=True)`).

API: `save_generator(directory, generator=, weights=, encoder=, hyperparameters=, provenance=, state=)`,
`load_generator(directory, generator) -> SavedGenerator`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flute.synth.generators import GeneratorError
from flute.synth.neural.encoding import TabularEncoder
from flute.synth.schema import SchemaError

if TYPE_CHECKING:
    import torch

SAVED_FORMAT = "flute-synth-neural/1"
WEIGHTS_FILE = "weights.safetensors"
META_FILE = "generator.json"


@dataclass(frozen=True)
class SavedGenerator:
    generator: str
    encoder: TabularEncoder
    hyperparameters: dict[str, Any]
    provenance: dict[str, Any]
    weights: dict[str, torch.Tensor]
    state: dict[str, Any]


def save_generator(
    directory: Path, *, generator: str, weights: Mapping[str, torch.Tensor], encoder: TabularEncoder,
    hyperparameters: Mapping[str, Any], provenance: Mapping[str, Any], state: Mapping[str, Any] | None = None,
) -> None:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    save_file({name: tensor.detach().contiguous() for name, tensor in weights.items()}, str(directory / WEIGHTS_FILE))
    meta = {
        "format": SAVED_FORMAT, "generator": generator, "encoder": json.loads(encoder.to_json()),
        "hyperparameters": dict(hyperparameters), "provenance": dict(provenance), "state": dict(state or {}),
    }
    (directory / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")


def load_generator(directory: Path, generator: str) -> SavedGenerator:
    """The saved `generator` in `directory`; a missing file, another format or another
    generator's directory is a GeneratorError naming the path."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    meta_path, weights_path = directory / META_FILE, directory / WEIGHTS_FILE
    if not meta_path.is_file() or not weights_path.is_file():
        raise GeneratorError(f"{directory}: needs {META_FILE} and {WEIGHTS_FILE}; not a saved {generator} generator")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != SAVED_FORMAT:
            raise GeneratorError(f"{meta_path}: expected format {SAVED_FORMAT!r}, got {meta.get('format')!r}")
        if meta.get("generator") != generator:
            raise GeneratorError(f"{meta_path}: holds a {meta.get('generator')!r} generator, not {generator!r}")
        encoder = TabularEncoder.from_json(meta["encoder"], source=str(meta_path))
        return SavedGenerator(
            generator, encoder, dict(meta["hyperparameters"]), dict(meta["provenance"]), load_file(str(weights_path)), dict(meta.get("state", {})),
        )
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, SchemaError, SafetensorError) as exc:
        raise GeneratorError(f"{directory}: cannot load the saved {generator} generator ({exc})") from exc
