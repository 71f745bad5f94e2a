"""The diffusion generator plugin (F-HUF-12, F-IMSD-6/15/17, F-HUF-17): registered without
importing torch, saved (safetensors + JSON) and loaded back to sample identically, conditional
requests delivered exactly with the achieved acceptance rate, impossible ones refused clearly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flute.synth.conditions import ConditionError, holds, parse_conditions
from flute.synth.federated import SynthHub
from flute.synth.generators import GeneratorError, TrainSettings, generator
from flute.synth.neural.diffusion import DiffusionGenerator
from flute.synth.neural.persist import META_FILE, WEIGHTS_FILE
from flute.synth.neural.rejection import sample_exactly
from flute.synth.schema import TableSchema

from .test_synth_neural_fit import TINY


@pytest.fixture(scope="module")
def model(hubs: list[SynthHub], schema: TableSchema) -> DiffusionGenerator:
    return generator("diffusion").train(hubs, schema, TrainSettings("neural-test", hyperparameters=TINY | {"rounds": 10}, seed=2))  # type: ignore[return-value]


def test_listing_generators_does_not_import_torch() -> None:
    code = "import sys; from flute.synth.generators import generator_names; names = generator_names(); assert 'diffusion' in names, names; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_saved_generator_samples_identically(model: DiffusionGenerator, tmp_path: Path) -> None:
    model.save(tmp_path / "g")
    assert {p.name for p in (tmp_path / "g").iterdir()} == {META_FILE, WEIGHTS_FILE}
    loaded = generator("diffusion").load(tmp_path / "g")
    first = model.sample(300, np.random.default_rng(9)).frame
    again = loaded.sample(300, np.random.default_rng(9)).frame
    assert len(first) == 300 and first.equals(again)
    assert loaded.provenance == model.provenance and loaded.schema == model.schema
    assert not first.equals(model.sample(300, np.random.default_rng(10)).frame)


def test_a_foreign_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(GeneratorError, match="not a saved diffusion generator"):
        generator("diffusion").load(tmp_path)


@pytest.mark.parametrize("text", ["cspca=1", "cspca=1,age>70,centre=b", "psa>=10,pirads in 4|5"])
def test_conditional_requests_are_exact(model: DiffusionGenerator, schema: TableSchema, text: str) -> None:
    conditions = parse_conditions(text, schema)
    result = model.sample(500, np.random.default_rng(1), conditions)
    assert len(result.frame) == 500 and holds(conditions, result.frame).all()
    assert 0 < result.condition_probability <= 1


def test_impossible_conditions_raise_a_clear_error(model: DiffusionGenerator, schema: TableSchema) -> None:
    with pytest.raises(ConditionError, match=r"no value of column\(s\) \['ageAtBiopsy'\]"):
        model.sample(10, np.random.default_rng(0), parse_conditions("age>95", schema))
    never_positive = lambda rows, rng, guidance: model.encoder.decode(np.zeros((rows, model.encoder.layout.width)))  # noqa: E731
    with pytest.raises(ConditionError, match=r"\(near\) impossible under this generator: 0 of 5000 drawn rows"):
        sample_exactly(model.encoder, never_positive, 10, np.random.default_rng(0), parse_conditions("cspca=1", schema), max_batches=2)


def test_hyperparameters_are_checked(hubs: list[SynthHub], schema: TableSchema) -> None:
    plugin = generator("diffusion")
    assert set(TINY) <= set(plugin.default_hyperparameters())
    for bad, message in (({"layers": 2}, "unknown hyperparameter"), ({"rounds": "ten"}, "must be an integer"), ({"sample_steps": 80, "timesteps": 50}, "cannot exceed")):
        with pytest.raises(GeneratorError, match=message):
            plugin.train(hubs, schema, TrainSettings("neural-test", hyperparameters=bad))
