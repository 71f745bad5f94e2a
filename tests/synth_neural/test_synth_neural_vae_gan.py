"""The VAE and conditional GAN generators (F-HUF-11, F-HUF-13, F-IMSD-6/13/15/17, F-HUF-17): trained
federatedly over in-memory hubs and over real hub homes (DP-SGD cost charged to every hub's
ledger), saved without pickle and reloaded to the same samples, and exact under conditions.
Tiny schedules and networks keep every training to a second or two."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flute.hub.ledger import PrivacyLedger
from flute.hub.node import open_hub
from flute.synth.conditions import ConditionError, holds, parse_conditions
from flute.synth.federated import SynthHub, open_hub_homes
from flute.synth.generators import GeneratorError, TrainSettings, generator, generator_names
from flute.synth.schema import CENTRE, CSPCA, study_schema
from hub_ledgers import charges, set_budgets
from simulated_hubs import simulated_hub_homes

VARIABLES = ("ageAtBiopsy", "psa", "pirads")
CENTRES = ("H1", "H2", "H3")
SMALL = {"rounds": 2, "local_steps": 5, "batch_size": 64, "hidden": 16}
GENERATORS = ("vae", "gan")


def _hub_frame(centre: str, rows: int, rng: np.random.Generator) -> pd.DataFrame:
    """Rows shaped like a hub's study table: csPCa more likely with a high PI-RADS and PSA."""
    pirads = rng.integers(1, 6, rows).astype(float)
    psa = np.round(np.exp(rng.normal(2.0, 0.6, rows)), 1)
    psa[rng.random(rows) < 0.05] = np.nan
    cspca = (rng.random(rows) < 1 / (1 + np.exp(-(pirads - 3.5) - 0.3 * (np.nan_to_num(psa, nan=8.0) - 8) / 8))).astype(int)
    return pd.DataFrame({"ageAtBiopsy": rng.integers(45, 85, rows).astype(float), "psa": psa, "pirads": pirads, CENTRE: centre, CSPCA: cspca})


@pytest.fixture(scope="module")
def memory_hubs() -> list[SynthHub]:
    rng = np.random.default_rng(3)
    return [SynthHub(centre, _hub_frame(centre, rows, rng)) for centre, rows in zip(CENTRES, (150, 90, 60))]


@pytest.fixture(scope="module")
def schema():  # type: ignore[no-untyped-def]
    return study_schema(VARIABLES, CENTRES)


@pytest.fixture(scope="module", params=GENERATORS)
def trained(request: pytest.FixtureRequest, memory_hubs: list[SynthHub], schema):  # type: ignore[no-untyped-def]
    return generator(request.param).train(memory_hubs, schema, TrainSettings("neural-test", hyperparameters=SMALL, seed=5))


def test_both_generators_are_registered_builtins() -> None:
    assert {"vae", "gan"} <= set(generator_names())
    for name in GENERATORS:
        defaults = generator(name).default_hyperparameters()
        assert {"rounds", "local_steps", "learning_rate", "hidden"} <= set(defaults)


def test_federated_fit_over_three_hubs_gives_exactly_typed_rows(trained, schema) -> None:  # type: ignore[no-untyped-def]
    provenance = trained.provenance
    assert provenance["hubs"] == list(CENTRES) and provenance["mode"] == "non-dp"
    assert provenance["aggregation"] == "fedavg" and provenance["secure_aggregation"] is True
    assert provenance["hyperparameters"]["rounds"] == 2 and provenance["hyperparameters"]["hidden"] == 16
    frame = trained.sample(500, np.random.default_rng(0)).frame
    assert list(frame.columns) == list(schema.names) and len(frame) == 500
    ages = frame["ageAtBiopsy"].dropna().to_numpy(dtype=float)
    assert np.all(ages == np.round(ages)) and ages.min() >= 40 and ages.max() < 91
    psa = frame["psa"].dropna().to_numpy(dtype=float)
    assert np.allclose(psa, np.round(psa, 1)) and psa.min() >= 0
    assert set(frame[CENTRE].dropna()) <= set(CENTRES) and set(frame[CSPCA].dropna()) <= {0, 1}
    schema.discretise(frame)  # every value is one the schema declares


def test_unknown_or_ill_typed_hyperparameters_are_refused(memory_hubs: list[SynthHub], schema) -> None:  # type: ignore[no-untyped-def]
    for name in GENERATORS:
        with pytest.raises(GeneratorError, match="unknown hyperparameter"):
            generator(name).train(memory_hubs, schema, TrainSettings("t", hyperparameters={"epochs": 3}))
        with pytest.raises(GeneratorError, match="'hidden' must be an integer"):
            generator(name).train(memory_hubs, schema, TrainSettings("t", hyperparameters={"hidden": 1.5}))


def test_saved_generator_reloads_to_identical_samples(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    name = trained.provenance["generator"]
    trained.save(tmp_path / "saved")
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == ["generator.json", "weights.safetensors"]
    assert json.loads((tmp_path / "saved" / "generator.json").read_text())["generator"] == name
    loaded = generator(name).load(tmp_path / "saved")
    first = trained.sample(300, np.random.default_rng(11)).frame
    again = loaded.sample(300, np.random.default_rng(11)).frame
    pd.testing.assert_frame_equal(first, again)
    assert loaded.provenance == trained.provenance
    other = "gan" if name == "vae" else "vae"
    with pytest.raises(GeneratorError, match=f"holds a '{name}' generator"):
        generator(other).load(tmp_path / "saved")


def test_conditions_are_met_exactly_with_the_requested_row_count(trained, schema) -> None:  # type: ignore[no-untyped-def]
    conditions = parse_conditions("cspca=1,age>60,centre=H2", schema)
    result = trained.sample(400, np.random.default_rng(2), conditions)
    assert len(result.frame) == 400 and holds(conditions, result.frame).all()
    assert 0 < result.condition_probability <= 1
    with pytest.raises(ConditionError, match="no row can meet them"):
        trained.sample(10, np.random.default_rng(2), parse_conditions("age>95", schema))


@pytest.fixture(scope="module")
def hub_homes(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return simulated_hub_homes(tmp_path_factory.mktemp("neural-pilot"), seed=11)


@pytest.mark.parametrize("name", GENERATORS)
def test_dp_training_charges_every_hub_ledger_before_training(name: str, hub_homes: list[Path]) -> None:
    study = f"neural-dp-{name}"
    set_budgets(hub_homes, study, 2.0)
    with open_hub_homes(hub_homes, VARIABLES, study) as hubs:
        schema = study_schema(VARIABLES, [hub.name for hub in hubs])
        fitted = generator(name).train(hubs, schema, TrainSettings(study, epsilon=1.0, delta=1e-6, hyperparameters=SMALL, seed=1))
    assert fitted.provenance["mode"] == "dp" and fitted.provenance["epsilon"] == pytest.approx(1.0)
    for home in hub_homes:
        assert charges(home, study) == [(pytest.approx(1.0), "committed")]
        with open_hub(home) as hub:
            assert PrivacyLedger(hub.store.engine).budget(study, home.name).epsilon_reserved == 0
    assert len(fitted.sample(100, np.random.default_rng(0)).frame) == 100
