"""The vetted model registry of the study spec (F-PIL-22/23, F-HUF-3..10): every model's
hyperparameters are typed and bounded, inconsistent model/strategy/preprocessing choices and
tuning spaces are refused with the reason."""

from __future__ import annotations

from typing import Any

import pytest

from flute.engine.spec import VETTED_MODELS, SpecError

from .zoo_specs import zoo_spec


def refusal(model: dict[str, Any], **sections: Any) -> str:
    with pytest.raises(SpecError) as caught:
        zoo_spec(model, **sections)
    return "\n".join(caught.value.reasons)


def test_registry_names_every_model() -> None:
    assert set(VETTED_MODELS) == {"logistic_regression", "decision_tree", "random_forest", "gbdt", "linear_svm", "mlp"}


@pytest.mark.parametrize(
    ("model", "fragment"),
    [
        ({"name": "decision_tree", "max_depth": 0}, "model.decision_tree.max_depth"),
        ({"name": "decision_tree", "min_rows_leaf": 2}, "model.decision_tree.min_rows_leaf"),
        ({"name": "decision_tree", "criterion": "mse"}, "model.decision_tree.criterion"),
        ({"name": "random_forest", "max_features": 0.0}, "model.random_forest.max_features"),
        ({"name": "random_forest", "n_trees": 10_000}, "model.random_forest.n_trees"),
        ({"name": "gbdt", "learning_rate": 0.0}, "model.gbdt.learning_rate"),
        ({"name": "gbdt", "max_bins": 1}, "model.gbdt.max_bins"),
        ({"name": "gbdt", "subsample": 0.5}, "model.gbdt.subsample: unknown option"),
        ({"name": "linear_svm", "loss": "log"}, "model.linear_svm.loss"),
        ({"name": "linear_svm", "l2": 0.0}, "model.linear_svm.l2"),
        ({"name": "xgboost"}, "'xgboost' is not a vetted algorithm"),
    ],
)
def test_out_of_bounds_or_unknown_hyperparameters_are_refused(model: dict[str, Any], fragment: str) -> None:
    assert fragment in refusal(model)


def test_model_and_strategy_must_fit_together() -> None:
    assert "grown from aggregated histograms; leave out strategy" in refusal({"name": "gbdt"}, strategy={"name": "fedavg"})
    assert "trains by local steps" in refusal({"name": "linear_svm"})  # default strategy is newton
    assert "bins standardised inputs" in refusal({"name": "decision_tree"}, preprocessing={"standardise": False})
    zoo_spec({"name": "linear_svm"}, strategy={"name": "fedprox", "mu": 0.1})


def test_tuning_space_must_name_options_of_the_model() -> None:
    tuning = {"method": "grid", "space": {"max_depth": {"choices": [2, 3]}, "l2": {"choices": [1.0]}}}
    assert "tuning.space names ['l2']" in refusal({"name": "decision_tree"}, tuning=tuning)
    assert "give either choices" in refusal({"name": "gbdt"}, tuning={"method": "bayes", "space": {"l2": {"low": 1.0}}})
    assert "log-scale range needs low > 0" in refusal({"name": "gbdt"}, tuning={"method": "bayes", "space": {"l2": {"low": 0.0, "high": 1.0, "log": True}}})
    assert "tuning.method" in refusal({"name": "gbdt"}, tuning={"method": "random", "space": {"l2": {"choices": [1.0]}}})
    assert "name" in refusal({"name": "gbdt"}, tuning={"method": "grid", "space": {"name": {"choices": ["decision_tree"]}}})
