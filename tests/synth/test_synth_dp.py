"""DP training over hub homes (F-IMSD-13, URS-6/7/8, NF-HUF-1): the composed cost is exactly the
target, every hub's ledger is charged before anything is computed and committed after, and a
budget that cannot pay refuses the training at every hub with nothing charged."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from flute.hub.ledger import BudgetExceeded, BudgetNotSet, PrivacyLedger
from flute.hub.node import open_hub
from flute.privacy.dp.accounting import gaussian_mechanism_epsilon
from flute.synth import federated
from flute.synth.budget import MarginalBudget
from flute.synth.federated import open_hub_homes
from flute.synth.schema import study_schema
from flute.synth.train import MarginalConfig, train_marginal
from hub_ledgers import charges, set_budgets

VARIABLES = ("ageAtBiopsy", "psa", "pirads")


@pytest.mark.parametrize("selection", [0, 10])
def test_the_composed_cost_is_the_target(selection: int) -> None:
    budget = MarginalBudget(1.5, 1e-6, 0.2)
    select, measure = budget.sigmas(selection, 4)
    ratio = math.sqrt(4 / measure**2 + (selection / select**2 if select else 0.0))
    assert gaussian_mechanism_epsilon(1.0, 1.0 / ratio, 1, 1e-6) == pytest.approx(1.5, rel=1e-9)
    assert budget.cost(selection, 4).epsilon == pytest.approx(1.5, rel=1e-9)


def test_dp_training_charges_each_hub_and_commits(synth_hub_homes: list[Path]) -> None:
    set_budgets(synth_hub_homes, "synth-dp", 2.0)
    with open_hub_homes(synth_hub_homes, VARIABLES, "synth-dp") as hubs:
        schema = study_schema(VARIABLES, [h.name for h in hubs])
        model = train_marginal(hubs, schema, MarginalConfig("synth-dp", MarginalBudget(1.2)))
    assert model.provenance["mode"] == "dp" and model.provenance["epsilon"] == pytest.approx(1.2)
    for home in synth_hub_homes:
        assert charges(home, "synth-dp") == [(pytest.approx(1.2), "committed")]


def test_an_insufficient_budget_refuses_everywhere_before_computing(synth_hub_homes: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    set_budgets(synth_hub_homes, "synth-small", 2.0)
    set_budgets(synth_hub_homes[-1:], "synth-small", 0.5)  # the last hub cannot pay
    computed: list[str] = []
    real_counts = federated.marginal_counts
    monkeypatch.setattr(federated, "marginal_counts", lambda *args: computed.append("counts") or real_counts(*args))
    with open_hub_homes(synth_hub_homes, VARIABLES, "synth-small") as hubs:
        schema = study_schema(VARIABLES, [h.name for h in hubs])
        with pytest.raises(BudgetExceeded, match="remaining epsilon=0.5"):
            train_marginal(hubs, schema, MarginalConfig("synth-small", MarginalBudget(1.0)))
        with pytest.raises(BudgetNotSet, match="no privacy budget is set for study 'synth-none'"):
            train_marginal(hubs, schema, MarginalConfig("synth-none", MarginalBudget(1.0)))
    assert computed == []
    for home in synth_hub_homes:  # the hubs that had reserved were refunded
        assert all(status == "released" for _, status in charges(home, "synth-small"))
        with open_hub(home) as hub:
            assert PrivacyLedger(hub.store.engine).budget("synth-small", home.name).epsilon_reserved == 0
