"""Hub handlers of the tree, forest, boosting, SVM and MLP messages: message in, `tree_steps` call on
the hub's own table, answer out - in the clear, or as the hub's input to a secure-aggregation round
when the coordinator announces one (every answer here is additive, or a weight vector averaged
as a weighted sum). A study with PETs never gets these answers in the clear
(`pet_steps.require_clear_answers_allowed`). `flute.engine.apps` registers them on the ClientApp.
"""

from __future__ import annotations

import numpy as np

from flute.cohort.table import StudyTable
from flute.engine import pet_steps, tree_steps
from flute.engine.additive import NewtonLayout, ScoresLayout, WeightedFitLayout
from flute.engine.flower import Context, RecordDict
from flute.engine.hub_secagg import start_round
from flute.engine.hub_steps import HubRefusal
from flute.engine.pet_records import RoundAnnouncement
from flute.engine.records import EvalIns, TrainIns
from flute.engine.sources import hub_name
from flute.engine.spec import StudySpec
from flute.engine.tree_records import BinsIns, HistIns, PlattIns


def _answer(spec: StudySpec, content: RecordDict, context: Context, what: str, clear: RecordDict, vector: np.ndarray) -> RecordDict:
    announcement = RoundAnnouncement.from_record(content)
    if announcement is None:
        pet_steps.require_clear_answers_allowed(spec, what)
        return clear
    return start_round(spec, context, announcement, vector, hub_name(context.node_config))


def bins(spec: StudySpec, table: StudyTable, content: RecordDict, context: Context) -> RecordDict:
    if spec.pets.dp is not None:
        raise HubRefusal(f"fine-grid counts are not released in DP study {spec.study_id}: its trees grow on data-free bins")
    result = tree_steps.fine_counts(spec, table, BinsIns.from_record(content))
    return _answer(spec, content, context, "bin counts", result.to_record(), result.counts.ravel())


def histograms(spec: StudySpec, table: StudyTable, content: RecordDict, context: Context) -> RecordDict:
    ins, hub = HistIns.from_record(content), hub_name(context.node_config)
    announcement = RoundAnnouncement.from_record(content)
    if spec.pets.dp is not None and announcement is not None:
        vector = pet_steps.dp_histogram_vector(spec, table, ins, announcement, hub, context)
        return start_round(spec, context, announcement, vector, hub)
    result = tree_steps.histograms(spec, table, ins, hub)
    return _answer(spec, content, context, "node histograms", result.to_record(), result.histograms.ravel())


def svm(spec: StudySpec, table: StudyTable, content: RecordDict, context: Context) -> RecordDict:
    ins = TrainIns.from_record(content)
    result = tree_steps.svm_fit(spec, table, ins)
    return _answer(spec, content, context, "a local model", result.to_record(), WeightedFitLayout(ins.weights.shape[0]).encode(result.fit))


def mlp(spec: StudySpec, table: StudyTable, content: RecordDict, context: Context) -> RecordDict:
    ins = TrainIns.from_record(content)
    announcement = RoundAnnouncement.from_record(content)
    if spec.pets.dp is not None and announcement is not None:
        vector = pet_steps.dp_mlp_vector(spec, table, ins, announcement, context)
        return start_round(spec, context, announcement, vector, hub_name(context.node_config))
    result = tree_steps.mlp_fit(spec, table, ins)
    return _answer(spec, content, context, "a local model", result.to_record(), WeightedFitLayout(ins.weights.shape[0]).encode(result.fit))


def platt(spec: StudySpec, table: StudyTable, content: RecordDict, context: Context) -> RecordDict:
    result = tree_steps.platt(spec, table, PlattIns.from_record(content))
    return _answer(spec, content, context, "Platt sums", result.to_record(), NewtonLayout(2).encode(result.sums))


def model_scores(spec: StudySpec, table: StudyTable, content: RecordDict, context: Context) -> RecordDict:
    result = tree_steps.score_model(spec, table, EvalIns.from_record(content))
    return _answer(spec, content, context, "score histograms", result.to_record(), ScoresLayout(spec.score_grid()).encode(result.summary))
