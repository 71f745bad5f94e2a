"""Federated hyperparameter search (F-HUF-10 grid, F-HUF-9 Bayesian): every trial is a federated
cross-validation scored from the hubs' histograms; the best trial is the highest CV AUROC; a
seeded Bayesian search repeats; tuning's DP cost is the trials' composition."""

from __future__ import annotations

import pytest

from flute.engine.tuning import TuningError, cv_auroc, grid_points, trial_spec, tune, tuning_cost
from flute.privacy.dp.cost import DpCost

from .zoo_specs import run_zoo_study, zoo_spec

TREE = {"name": "decision_tree", "min_rows_leaf": 10}


def test_grid_search_picks_the_trial_with_the_best_federated_cv_auroc() -> None:
    spec = zoo_spec(TREE, tuning={"method": "grid", "trials": 4, "space": {"max_depth": {"choices": [1, 4]}, "criterion": {"choices": ["gini", "entropy"]}}})
    result = tune(spec, run_zoo_study)
    assert [trial.params for trial in result.trials] == grid_points(spec.tuning)  # type: ignore[arg-type]
    assert len(result.trials) == 4
    best = result.best
    assert best.cv_auroc == max(trial.cv_auroc for trial in result.trials)
    assert best.params["max_depth"] == 4  # a stump cannot rank as well as a depth-4 tree here
    again = run_zoo_study(trial_spec(spec, best.params))  # the objective is the study's own CV AUROC
    assert cv_auroc(again) == best.cv_auroc
    assert not again.of_kind("loho")


def test_numeric_grid_axes_and_a_grid_larger_than_the_trial_budget() -> None:
    spec = zoo_spec(TREE, tuning={"method": "grid", "trials": 3, "space": {"max_depth": {"low": 1, "high": 4, "steps": 4, "integer": True}, "min_rows_leaf": {"low": 10, "high": 40, "steps": 2, "log": True, "integer": True}}})
    assert grid_points(spec.tuning) == [  # type: ignore[arg-type]
        {"max_depth": d, "min_rows_leaf": leaf} for d in (1, 2, 3, 4) for leaf in (10, 40)
    ]
    with pytest.raises(TuningError, match="the grid has 8 points but tuning.trials = 3"):
        tune(spec, run_zoo_study)


def test_a_grid_point_outside_the_model_bounds_is_refused_before_any_study_runs() -> None:
    spec = zoo_spec(TREE, tuning={"method": "grid", "trials": 2, "space": {"max_depth": {"choices": [3, 40]}}})
    ran = []
    with pytest.raises(ValueError, match="max_depth"):
        tune(spec, lambda s: ran.append(s) or run_zoo_study(s))  # type: ignore[func-returns-value]
    assert not ran


def test_seeded_bayesian_search_repeats_its_trials() -> None:
    spec = zoo_spec(TREE, tuning={"method": "bayes", "trials": 2, "space": {"max_depth": {"low": 1, "high": 5, "integer": True}}})
    first, second = tune(spec, run_zoo_study), tune(spec, run_zoo_study)
    assert first.trials == second.trials and len(first.trials) == 2
    assert all(1 <= trial.params["max_depth"] <= 5 for trial in first.trials)


def test_tuning_needs_cross_validation() -> None:
    spec = zoo_spec(TREE, evaluation={"cv_folds": 0}, tuning={"method": "grid", "space": {"max_depth": {"choices": [2]}}})
    with pytest.raises(TuningError, match="cv_folds >= 2"):
        tune(spec, run_zoo_study)


def test_tuning_cost_multiplies_the_per_trial_cost() -> None:
    per_trial = DpCost(epsilon=0.5, delta=1e-6, unit="record", mechanism="gaussian")
    total = tuning_cost(8, per_trial)
    assert (total.epsilon, total.delta, total.unit) == (4.0, 8e-6, "record")
    assert total.details["trials"] == 8
    with pytest.raises(ValueError, match="no guarantee"):
        tuning_cost(10, DpCost(epsilon=1.0, delta=0.2, unit="record", mechanism="gaussian"))
