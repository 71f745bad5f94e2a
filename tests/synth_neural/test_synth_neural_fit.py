"""Federated training of neural generators (F-HUF-11..14, F-IMSD-13, F-IMSD-16, URS-6/7/8):
FedAvg/FedProx over in-memory hubs is deterministic with a seed, reports progress and stops when
cancelled; with DP, every hub's real ledger is charged the whole cost before anything is computed,
an unpayable budget refuses the training everywhere with nothing computed, and a training
cancelled after releases keeps its charge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flute.hub.ledger import BudgetExceeded
from flute.synth.federated import SynthHub, open_hub_homes
from flute.synth.generators import TrainingCancelled, TrainSettings, generator
from flute.synth.neural import encoding
from flute.synth.neural.diffusion import DiffusionGenerator
from flute.synth.schema import TableSchema, study_schema
from hub_ledgers import charges, set_budgets

from .conftest import VARIABLES

TINY: dict[str, Any] = {"rounds": 3, "local_steps": 2, "batch_size": 512, "hidden": 16, "depth": 1, "timesteps": 50, "sample_steps": 5}


def _train(hubs: list[SynthHub], schema: TableSchema, **settings: Any) -> DiffusionGenerator:
    values = {"hyperparameters": TINY} | settings
    return generator("diffusion").train(hubs, schema, TrainSettings("neural-test", **values))  # type: ignore[return-value]


def _weights(model: DiffusionGenerator) -> list[list[float]]:
    return [tensor.flatten().tolist() for tensor in model.model.state_dict().values()]


def test_training_is_deterministic_with_a_seed(hubs: list[SynthHub], schema: TableSchema) -> None:
    first, again, other = _train(hubs, schema, seed=3), _train(hubs, schema, seed=3), _train(hubs, schema, seed=4)
    assert _weights(first) == _weights(again)
    assert _weights(first) != _weights(other)
    assert first.provenance["aggregation"] == "fedavg" and first.provenance["secure_aggregation"] is True
    assert first.provenance["hubs"] == ["a", "b", "c"] and first.provenance["mode"] == "non-dp"


def test_fedprox_is_an_option(hubs: list[SynthHub], schema: TableSchema) -> None:
    prox = generator("diffusion").train(hubs, schema, TrainSettings("neural-test", hyperparameters=TINY | {"proximal_mu": 0.5}, seed=3))
    assert prox.provenance["aggregation"] == "fedprox"
    assert _weights(prox) != _weights(_train(hubs, schema, seed=3))  # type: ignore[arg-type]


def test_progress_is_reported_and_cancellation_stops_training(hubs: list[SynthHub], schema: TableSchema) -> None:
    reports: list[float] = []
    _train(hubs, schema, seed=1, progress=lambda fraction, message: reports.append(fraction))
    assert reports[-1] == 1.0 and reports == sorted(reports)
    rounds: list[float] = []
    with pytest.raises(TrainingCancelled, match="neural-test"):
        _train(hubs, schema, seed=1, progress=lambda fraction, message: rounds.append(fraction), cancelled=lambda: len(rounds) >= 2)
    assert len(rounds) == 2  # the start, then one round: nothing after the cancellation


@pytest.mark.slow
def test_dp_training_charges_every_hub_ledger_first(neural_hub_homes: list[Path]) -> None:
    set_budgets(neural_hub_homes, "neural-dp", 3.0)
    with open_hub_homes(neural_hub_homes, VARIABLES, "neural-dp") as hubs:
        schema = study_schema(VARIABLES, [hub.name for hub in hubs])
        model = generator("diffusion").train(hubs, schema, TrainSettings("neural-dp", epsilon=1.0, delta=1e-6, hyperparameters=TINY, seed=0))
    assert model.provenance["mode"] == "dp" and model.provenance["unit_of_privacy"].startswith("one patient record")
    assert model.provenance["privacy"]["steps"] == TINY["rounds"] * TINY["local_steps"]
    for home in neural_hub_homes:
        assert charges(home, "neural-dp") == [(pytest.approx(1.0), "committed")]


@pytest.mark.slow
def test_an_unpayable_budget_refuses_everywhere_before_computing(neural_hub_homes: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    set_budgets(neural_hub_homes, "neural-small", 2.0)
    set_budgets(neural_hub_homes[-1:], "neural-small", 0.5)
    computed: list[str] = []
    real_sum = encoding.secure_marginal_sum
    monkeypatch.setattr(encoding, "secure_marginal_sum", lambda *args, **kwargs: computed.append("histograms") or real_sum(*args, **kwargs))
    with open_hub_homes(neural_hub_homes, VARIABLES, "neural-small") as hubs:
        schema = study_schema(VARIABLES, [hub.name for hub in hubs])
        with pytest.raises(BudgetExceeded, match="remaining epsilon=0.5"):
            generator("diffusion").train(hubs, schema, TrainSettings("neural-small", epsilon=1.0, hyperparameters=TINY))
    assert computed == []
    for home in neural_hub_homes:
        assert all(status == "released" for _, status in charges(home, "neural-small"))


@pytest.mark.slow
def test_a_dp_training_cancelled_after_releases_keeps_its_charge(neural_hub_homes: list[Path]) -> None:
    set_budgets(neural_hub_homes, "neural-cancel", 3.0)
    rounds: list[float] = []
    with open_hub_homes(neural_hub_homes, VARIABLES, "neural-cancel") as hubs:
        schema = study_schema(VARIABLES, [hub.name for hub in hubs])
        settings = TrainSettings(
            "neural-cancel", epsilon=1.0, hyperparameters=TINY, progress=lambda fraction, message: rounds.append(fraction), cancelled=lambda: len(rounds) >= 2,
        )
        with pytest.raises(TrainingCancelled):
            generator("diffusion").train(hubs, schema, settings)
    for home in neural_hub_homes:
        assert charges(home, "neural-cancel") == [(pytest.approx(1.0), "committed")]
