"""Under DP a neural generator falls back to its private defaults (small model, few rounds of
large batches), which a request can still override; without DP the plain defaults apply."""

from __future__ import annotations

import pytest

from flute.synth.generators import GeneratorError, generator
from flute.synth.neural.hyperparameters import effective_defaults


@pytest.mark.parametrize("name", ["diffusion", "vae", "gan"])
def test_private_defaults_apply_only_under_dp_and_yield_to_explicit_values(name: str) -> None:
    plugin = generator(name)
    plain_schedule, plain_architecture = plugin.resolved_hyperparameters({}, private=False)
    private_schedule, private_architecture = plugin.resolved_hyperparameters({}, private=True)
    defaults = plugin.default_hyperparameters()
    assert plain_schedule.rounds == defaults["rounds"] and plain_architecture.hidden == defaults["hidden"]
    assert private_schedule.rounds < plain_schedule.rounds and private_architecture.hidden < plain_architecture.hidden
    chosen_schedule, chosen_architecture = plugin.resolved_hyperparameters({"rounds": 7, "hidden": 16}, private=True)
    assert (chosen_schedule.rounds, chosen_architecture.hidden) == (7, 16)
    assert chosen_schedule.batch_size == private_schedule.batch_size


def test_private_defaults_naming_an_unknown_hyperparameter_are_refused() -> None:
    with pytest.raises(GeneratorError, match="unknown hyperparameter"):
        effective_defaults({"rounds": 10}, {"epochs": 3}, private=True)
