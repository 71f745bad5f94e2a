"""What a hub computes under the study's PETs: each additive answer as a flat vector for secure
aggregation (`flute.engine.additive` layouts), with this hub's DP noise share in 'secagg_dp',
and the enrolment census. The plain steps of `flute.engine.hub_steps` do the arithmetic.

A hub whose spec asks for secure aggregation refuses to answer an additive request in the clear
(`require_clear_answers_allowed`): the PET choice is enforced where the data is (F-SRS-4/10).
"""

from __future__ import annotations

import numpy as np

from flute.cohort.table import StudyTable
from flute.engine import hub_privacy, hub_steps, tree_steps
from flute.engine.additive import ColumnSumsLayout, NewtonLayout, ScoresLayout, WeightedFitLayout
from flute.engine.flower import Context
from flute.engine.hub_steps import HubRefusal
from flute.engine.pet_records import CensusIns, CensusRes, RoundAnnouncement
from flute.engine.records import EvalIns, StatsIns, TrainIns
from flute.engine.spec import StudySpec
from flute.engine.tree_records import HistIns
from flute.learn.clipped_gradient import row_sensitivity
from flute.learn.logistic import LocalFit
from flute.learn.preprocess import column_sums, log_transform


def require_clear_answers_allowed(spec: StudySpec, what: str) -> None:
    if spec.pets.mode != "none":
        raise HubRefusal(f"{what} in the clear refused: study {spec.study_id} runs with pets.mode {spec.pets.mode!r} (secure aggregation)")


def census(spec: StudySpec, table: StudyTable, ins: CensusIns, hub: str, context: Context) -> CensusRes:
    """Name and counts. In 'secagg_dp' the whole study's privacy cost is reserved first (a hub
    without enough budget refuses here, before computing anything) and the counts are noised."""
    if spec.pets.dp is not None:
        hub_privacy.reserve_study(spec, context.node_config, context.state, ins.run.run_nonce, hub)
        hub_privacy.spend_release(spec, context.node_config, context.state, ins.run.run_nonce)
    logged = log_transform(table.features, table.columns, spec.preprocessing.log_transform)
    sums, positives = column_sums(logged), int(np.sum(table.labels == 1))
    if spec.pets.dp is None:
        return CensusRes(hub, sums.n_rows, positives, sums.n_incomplete)
    rows, positives, incomplete = hub_privacy.noisy_census(spec, sums.n_rows, positives, sums.n_incomplete)
    hub_privacy.remember_census_rows(context.state, ins.run.run_nonce, rows)
    return CensusRes(hub, rows, positives, incomplete)


def _dp_release(spec: StudySpec, context: Context, announcement: RoundAnnouncement, *, units: int = 1) -> bool:
    """True (after charging the release against this run's plan) when the study is DP."""
    if spec.pets.dp is None:
        return False
    hub_privacy.spend_release(spec, context.node_config, context.state, announcement.run_nonce, units=units)
    return True


def column_vector(spec: StudySpec, table: StudyTable, ins: StatsIns, announcement: RoundAnnouncement, hub: str, context: Context) -> np.ndarray:
    precision = hub_privacy.PREPROCESSING_PRECISION
    if _dp_release(spec, context, announcement, units=precision**2):
        layout = hub_privacy.DpColumnLayout(spec)
        selected = hub_steps.select_rows(table, ins.rows)
        rows = layout.rows(selected.features, selected.labels)
        return hub_privacy.noisy_sum(spec, rows, layout.sensitivity, len(announcement.members), precision=precision)
    result = hub_steps.summarise_columns(spec, table, ins, hub)
    return ColumnSumsLayout(len(spec.model_inputs)).encode(result.sums, result.n_positive)


def newton_vector(spec: StudySpec, table: StudyTable, ins: TrainIns) -> np.ndarray:
    return NewtonLayout(ins.weights.shape[0]).encode(hub_steps.newton_step(spec, table, ins).sums)


def weighted_fit_vector(spec: StudySpec, table: StudyTable, ins: TrainIns) -> np.ndarray:
    return WeightedFitLayout(ins.weights.shape[0]).encode(hub_steps.local_fit(spec, table, ins).fit)


def gradient_vector(spec: StudySpec, table: StudyTable, ins: TrainIns, announcement: RoundAnnouncement | None, context: Context) -> np.ndarray:
    """[scaled weight total, summed clipped gradient]; noised in 'secagg_dp'."""
    rows = hub_steps.clipped_gradient_rows(spec, table, ins)
    if announcement is not None and _dp_release(spec, context, announcement):
        sensitivity = row_sensitivity(hub_steps.objective_of(spec, ins), spec.strategy.clip_norm)  # type: ignore[union-attr]
        return hub_privacy.noisy_sum(spec, rows, sensitivity, len(announcement.members))
    return rows.sum(axis=0)


def dp_mlp_vector(spec: StudySpec, table: StudyTable, ins: TrainIns, announcement: RoundAnnouncement, context: Context) -> np.ndarray:
    """One DP-SGD training release (charged against this run's plan first) in the weighted-fit
    layout, weighted by this hub's NOISY census row count (already released, so re-sending it is
    post-processing) and with loss 0: the exact row total and loss are not DP, so neither is sent;
    the coordinator averages the hubs' DP models by their released sizes and logs no loss."""
    _dp_release(spec, context, announcement)
    fit = tree_steps.mlp_fit(spec, table, ins, dp=hub_privacy.mlp_dp_sgd(spec)).fit
    weight = float(hub_privacy.released_census_rows(context.state, announcement.run_nonce))
    return WeightedFitLayout(ins.weights.shape[0]).encode(LocalFit(fit.weights, weight, 0.0))


def dp_histogram_vector(spec: StudySpec, table: StudyTable, ins: HistIns, announcement: RoundAnnouncement, hub: str, context: Context) -> np.ndarray:
    """One DP histogram release of a tree model: the request checked and its sensitivity fixed,
    the release charged against this run's plan, then the sums plus this hub's noise share."""
    sensitivity = tree_steps.dp_histogram_sensitivity(spec, ins)
    _dp_release(spec, context, announcement)
    sums = tree_steps.histograms(spec, table, ins, hub).histograms
    return hub_privacy.noisy_total(spec, sums.ravel(), sensitivity, len(announcement.members))


def scores_vector(spec: StudySpec, table: StudyTable, ins: EvalIns) -> np.ndarray:
    return ScoresLayout(spec.score_grid()).encode(hub_steps.score(spec, table, ins).summary)
