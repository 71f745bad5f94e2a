"""What a hub computes for each message, as plain functions over its own StudyTable (F-SRS-5).

The ClientApp handlers only translate messages into these typed calls. Every step re-reads its
options from the study spec the hub validated itself and refuses requests the spec does not allow
(F-PIL-22/23): a coordinator cannot ask a hub for a strategy, penalty or epoch count other than the
spec's. Only aggregates leave these functions (URS-1, URS-12).
"""

from __future__ import annotations

import numpy as np

from flute.cohort.table import StudyTable
from flute.engine.records import EvalIns, EvalRes, FitRes, NewtonRes, Preprocessing, RowSelection, StatsIns, StatsRes, TrainIns
from flute.engine.spec import ClippedGradientSpec, FedProxSpec, NewtonSpec, StudySpec
from flute.evaluate.summary import summarise_scores
from flute.learn.clipped_gradient import clipped_gradient_rows as per_record_rows
from flute.learn.folds import stratified_folds
from flute.learn.logistic import LogisticObjective, local_gradient_descent, newton_sums, predict_probability
from flute.learn.preprocess import Standardiser, category_levels, column_sums, design_matrix


class HubRefusal(RuntimeError):
    """The hub declines a request (cohort too small, step not allowed by the spec, ...)."""


def check_cohort(spec: StudySpec, table: StudyTable) -> None:
    """F-PIL-14 / F-PIL-11: a hub with fewer rows than the study requires does not take part,
    so aggregates of very small cohorts are never released."""
    if table.n < spec.resources.min_rows_per_hub:
        raise HubRefusal(
            f"this hub has {table.n} eligible rows, fewer than the study's resources.min_rows_per_hub="
            f"{spec.resources.min_rows_per_hub}; it does not take part"
        )


def with_hub_columns(spec: StudySpec, table: StudyTable, hub: str) -> StudyTable:
    """The hub's table with its hub-intercept columns (`preprocessing.hub_intercepts`): 1 in its
    own, 0 in the others'. A hub the spec does not list does not take part: its rows would
    silently get the common intercept of the hubs it is not."""
    hubs = spec.preprocessing.hub_intercepts
    if not hubs:
        return table
    if hub not in hubs:
        raise HubRefusal(f"hub {hub!r} is not among the study's preprocessing.hub_intercepts {list(hubs)}; it does not take part")
    indicators = np.zeros((table.n, len(hubs)))
    indicators[:, hubs.index(hub)] = 1.0
    return StudyTable((*table.columns, *spec.preprocessing.hub_columns), np.hstack([table.features, indicators]), table.labels)


def select_rows(table: StudyTable, rows: RowSelection) -> StudyTable:
    """The rows a task uses; fold membership is computed here, from the hub's own labels."""
    if rows.part == "all":
        return table
    folds = stratified_folds(table.labels, rows.n_folds, rows.seed)
    keep = folds == rows.fold if rows.part == "held_out" else folds != rows.fold
    return StudyTable(table.columns, table.features[keep], table.labels[keep])


def summarise_columns(spec: StudySpec, table: StudyTable, ins: StatsIns, hub: str) -> StatsRes:
    selected = select_rows(table, ins.rows)
    prep = spec.preprocessing
    inputs = design_matrix(selected.features, selected.columns, prep.log_transform, category_levels(prep.categories))
    return StatsRes(hub, column_sums(inputs), int(np.sum(selected.labels == 1)))


def _model_inputs(spec: StudySpec, table: StudyTable, rows: RowSelection, preprocessing: Preprocessing) -> StudyTable:
    standardiser = study_standardiser(spec, preprocessing)
    selected = select_rows(table, rows)
    return StudyTable(standardiser.inputs, standardiser.transform(selected.features), selected.labels)


def study_standardiser(spec: StudySpec, preprocessing: Preprocessing) -> Standardiser:
    """The study's transforms with the coordinator's means and scales, checked for their width."""
    if preprocessing.means.shape[0] != len(spec.model_inputs):
        raise HubRefusal(
            f"preprocessing has {preprocessing.means.shape[0]} columns but the study has {len(spec.model_inputs)} model inputs"
        )
    prep = spec.preprocessing
    return Standardiser(spec.study_columns, prep.log_transform, preprocessing.means, preprocessing.scales, prep.categories)


def _objective(spec: StudySpec, ins: TrainIns) -> LogisticObjective:
    if spec.model.class_weight == "none" and ins.class_weights != (1.0, 1.0):
        raise HubRefusal(f"the spec has class_weight 'none' but the request carries class weights {ins.class_weights}")
    expected = len(spec.model_inputs) + 1
    if ins.weights.shape != (expected,):
        raise HubRefusal(f"weights have shape {ins.weights.shape}; the study's model has {expected} weights")
    return LogisticObjective(l2=spec.model.l2, class_weights=ins.class_weights)


def newton_step(spec: StudySpec, table: StudyTable, ins: TrainIns) -> NewtonRes:
    if not isinstance(spec.strategy, NewtonSpec):
        raise HubRefusal(f"Newton sums requested, but the study's strategy is {spec.strategy.name!r}")
    data = _model_inputs(spec, table, ins.rows, ins.preprocessing)
    return NewtonRes(newton_sums(ins.weights, data.features, data.labels, _objective(spec, ins)))


def local_fit(spec: StudySpec, table: StudyTable, ins: TrainIns) -> FitRes:
    if isinstance(spec.strategy, (NewtonSpec, ClippedGradientSpec)):
        raise HubRefusal(f"local training requested, but the study's strategy is {spec.strategy.name!r}")
    mu = spec.strategy.mu if isinstance(spec.strategy, FedProxSpec) else 0.0
    data = _model_inputs(spec, table, ins.rows, ins.preprocessing)
    fit = local_gradient_descent(
        ins.weights,
        data.features,
        data.labels,
        _objective(spec, ins),
        epochs=spec.training.local_epochs,
        learning_rate=spec.training.learning_rate,
        proximal_mu=mu,
    )
    return FitRes(fit)


def clipped_gradient_rows(spec: StudySpec, table: StudyTable, ins: TrainIns) -> np.ndarray:
    """Per record [class weight, loss gradient clipped to strategy.clip_norm] (summed, or noised
    and summed, by the caller)."""
    if not isinstance(spec.strategy, ClippedGradientSpec):
        raise HubRefusal(f"clipped gradients requested, but the study's strategy is {spec.strategy.name!r}")
    data = _model_inputs(spec, table, ins.rows, ins.preprocessing)
    return per_record_rows(ins.weights, data.features, data.labels, _objective(spec, ins), spec.strategy.clip_norm)


def objective_of(spec: StudySpec, ins: TrainIns) -> LogisticObjective:
    """The objective a training request implies, checked against the hub's spec."""
    return _objective(spec, ins)


def score(spec: StudySpec, table: StudyTable, ins: EvalIns) -> EvalRes:
    expected = len(spec.model_inputs) + 1
    if ins.weights.shape != (expected,):
        raise HubRefusal(f"weights have shape {ins.weights.shape}; the study's model has {expected} weights")
    data = _model_inputs(spec, table, ins.rows, ins.preprocessing)
    risks = predict_probability(ins.weights, data.features)
    return EvalRes(summarise_scores(data.labels, risks, spec.score_grid()))
