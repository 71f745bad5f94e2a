"""Federated hyperparameter search (F-HUF-10 grid search, F-HUF-9 Bayesian optimisation).

A trial is a whole federated study: the spec with the trial's model options, cross-validation
only (no leave-one-hub-out, no reuse of any row outside its hub). Its objective is the pooled
out-of-fold AUROC computed from the hubs' risk histograms, so tuning sees no more than validation
does. Every trial spec is validated like any spec, and hubs validate it again when it runs.

Grid search runs every point of the space (refusing a grid larger than `tuning.trials`); Bayesian
optimisation runs `tuning.trials` trials proposed by Optuna's TPE sampler seeded with the study
seed, so a search repeats exactly. Each trial releases what one study releases: under DP the
budget a tuning run needs is `tuning_cost(trials, per-trial cost)` (sequential composition).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from flute.engine.model_specs import ChoiceRange, TuningSpec
from flute.engine.result import StudyResult
from flute.engine.spec import StudySpec
from flute.privacy.dp.cost import DpCost

Params = dict[str, Any]
RunStudy = Callable[[StudySpec], StudyResult]
"""Runs a study over the federation (embedded or deployed) and returns its result."""


class TuningError(ValueError):
    """A tuning section that cannot run; the message says what to change."""


@dataclass(frozen=True)
class Trial:
    params: Params
    cv_auroc: float


@dataclass(frozen=True)
class TuningResult:
    trials: tuple[Trial, ...]

    @property
    def best(self) -> Trial:
        """The trial with the highest CV AUROC (the earliest among equals)."""
        return max(self.trials, key=lambda trial: trial.cv_auroc)


def trial_spec(spec: StudySpec, params: Mapping[str, Any]) -> StudySpec:
    """The study a trial runs: the model with `params`, cross-validation only, no tuning."""
    data = spec.model_dump(mode="json", exclude_none=True)
    data["model"] = {**data["model"], **params}
    data["evaluation"] = {**data["evaluation"], "leave_one_hub_out": False}
    data.pop("tuning", None)
    return StudySpec.from_mapping(data, source=f"tuning trial {dict(params)}")


def _axis(name: str, values: ChoiceRange) -> list[Any]:
    if values.choices is not None:
        return list(values.choices)
    assert values.low is not None and values.high is not None
    if values.log:
        points = np.geomspace(values.low, values.high, values.steps)
    else:
        points = np.linspace(values.low, values.high, values.steps)
    if values.integer:
        return sorted({int(round(point)) for point in points})
    return [float(point) for point in points]


def grid_points(tuning: TuningSpec) -> list[Params]:
    """Every combination of the axes, in a fixed order (space keys sorted)."""
    names = sorted(tuning.space)
    axes = [_axis(name, tuning.space[name]) for name in names]
    return [dict(zip(names, combination)) for combination in itertools.product(*axes)]


def cv_auroc(result: StudyResult) -> float:
    from flute.evaluate.discrimination import auroc

    return float(auroc(result.cv_pooled_summary()).value)


def _checked(spec: StudySpec) -> TuningSpec:
    if spec.tuning is None:
        raise TuningError("the spec has no tuning section")
    if spec.evaluation.cv_folds < 2:
        raise TuningError("tuning optimises cross-validated AUROC; set evaluation.cv_folds >= 2")
    return spec.tuning


def tune(spec: StudySpec, run_study: RunStudy) -> TuningResult:
    """Run the spec's search; each trial is `run_study(trial_spec(...))`."""
    tuning = _checked(spec)
    if tuning.method == "grid":
        points = grid_points(tuning)
        if len(points) > tuning.trials:
            raise TuningError(f"the grid has {len(points)} points but tuning.trials = {tuning.trials}; raise trials or shrink the space")
        specs = [trial_spec(spec, point) for point in points]  # refuse an invalid point before any study runs
        return TuningResult(tuple(Trial(point, cv_auroc(run_study(s))) for point, s in zip(points, specs)))
    return _bayes(spec, tuning, run_study)


def _bayes(spec: StudySpec, tuning: TuningSpec, run_study: RunStudy) -> TuningResult:
    import optuna

    for name, values in tuning.space.items():  # the range ends must be valid model options
        ends = values.choices if values.choices is not None else (values.low, values.high)
        for end in ends:
            trial_spec(spec, {name: int(end) if values.integer else end})  # type: ignore[arg-type]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=spec.seed))
    trials: list[Trial] = []

    def objective(trial: optuna.Trial) -> float:
        params = {name: _suggest(trial, name, values) for name, values in sorted(tuning.space.items())}
        score = cv_auroc(run_study(trial_spec(spec, params)))
        trials.append(Trial(params, score))
        return score

    study.optimize(objective, n_trials=tuning.trials)
    return TuningResult(tuple(trials))


def _suggest(trial: Any, name: str, values: ChoiceRange) -> Any:
    if values.choices is not None:
        return trial.suggest_categorical(name, list(values.choices))
    assert values.low is not None and values.high is not None
    if values.integer:
        return trial.suggest_int(name, math.ceil(values.low), math.floor(values.high), log=values.log)
    return trial.suggest_float(name, values.low, values.high, log=values.log)


def tuning_cost(trials: int, per_trial_cost: DpCost) -> DpCost:
    """The privacy cost of `trials` DP studies over the same rows, by basic sequential
    composition (epsilons and deltas add): what a hub must have left in its budget before a
    tuning run starts. Conservative; a tighter accountant can only lower it."""
    if trials < 1:
        raise ValueError(f"trials must be at least 1, got {trials}")
    if trials * per_trial_cost.delta >= 1.0:
        raise ValueError(f"{trials} trials at delta {per_trial_cost.delta:g} each compose to no guarantee (delta >= 1); lower delta or trials")
    return DpCost(
        epsilon=trials * per_trial_cost.epsilon,
        delta=trials * per_trial_cost.delta,
        unit=per_trial_cost.unit,
        mechanism=f"{trials} tuning trials of {per_trial_cost.mechanism}",
        details={**per_trial_cost.details, "trials": trials},
    )

