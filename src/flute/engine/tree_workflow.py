"""Coordinator-side training of the tree, forest, boosting, SVM and MLP models over the hubs
(F-HUF-4..7): the `Coordinator` hands every task of such a study to `train_model_task`.

A task runs the same federated preprocessing as logistic regression, then
- trees: shared quantile bins from the hubs' fine-grid counts (in a DP study data-free bins, and
  noisy histograms post-processed, `flute.engine.tree_privacy`), and level-wise growth from the
  hubs' summed node histograms (`flute.learn.tree_models.fit_tree_model` over `HubTreeFederation`);
- SVM: averaging rounds of the hubs' local SVM steps, then federated Newton for the Platt map
  (`flute.learn.svm.train_linear_svm`);
- MLP: averaging rounds of the hubs' local network steps from a vector seeded by the study seed.
Every hub answer here is a sum over rows (or locally trained weights); under pets.mode 'secagg'
each is securely aggregated like logistic regression's. The trained model travels as its parameter
vector (`flute.learn.models`), so scoring, results and checkpoints treat every model alike. A task
interrupted midway is run again from its start on resume (completed tasks are kept).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import numpy as np

from flute.engine import tree_privacy
from flute.engine.additive import NewtonLayout, WeightedFitLayout
from flute.engine.flower import RecordDict
from flute.engine.model_specs import LinearSvmSpec, MlpSpec
from flute.engine.records import FitRes, MessageKind, NewtonRes, Preprocessing, RowSelection, TrainIns
from flute.engine.result import Task, TrainedModel
from flute.engine.tree_records import BinsIns, BinsRes, HistIns, HistRes, HistogramKind, PlattIns
from flute.learn.binning import FineGrid, QuantileBins, standard_normal_bins
from flute.learn.logistic import LocalFit, LogisticObjective, NewtonSums, zero_weights
from flute.learn.mlp import MlpModel, initial_vector
from flute.learn.models import encode
from flute.learn.svm import PlattResults, train_linear_svm
from flute.learn.training import LocalResults, run_rounds
from flute.learn.tree import OpenNode, Tree
from flute.learn.tree_models import TreeEnsemble, fit_tree_model

if TYPE_CHECKING:
    from flute.engine.workflow import Coordinator


@dataclass
class _TaskMessaging:
    """Sends one task's requests to its training hubs, in the clear or securely aggregated."""

    coordinator: Coordinator
    task: Task
    required: int
    rounds: int = field(default=0)

    def total(self, kind: MessageKind, content: RecordDict, *, length: int, integer: bool = False) -> np.ndarray | list[RecordDict]:
        """The securely aggregated vector under secure aggregation, else the hubs' answers."""
        self.rounds += 1
        nodes = self.coordinator._nodes(exclude=self.task.held_out_hub)
        group = f"{self.task.key}/{kind.value}-{self.rounds}"
        if self.coordinator.secure is not None:
            return self.coordinator._secure_total(kind, content, nodes, group, length=length, integer=integer)
        return list(self.coordinator.federation.ask(kind, {n: content for n in nodes}, group, required=self.required).values())


@dataclass
class HubTreeFederation:
    """`flute.learn.tree_models.TreeFederation` over the hubs of one task."""

    messaging: _TaskMessaging
    rows: RowSelection
    preprocessing: Preprocessing
    class_weights: tuple[float, float]
    seed: int
    private: bool = False
    """A DP study: the summed histograms are noisy and are post-processed (`tree_privacy.postprocess`)."""

    def fine_histograms(self, grid: FineGrid) -> np.ndarray:
        n_features = self.preprocessing.means.shape[0]
        content = BinsIns(self.rows, self.preprocessing).to_record()
        answers = self.messaging.total(MessageKind.BINS, content, length=n_features * grid.n_slots, integer=True)
        if isinstance(answers, np.ndarray):
            return np.rint(answers).astype(np.int64).reshape(n_features, grid.n_slots)
        return np.sum([BinsRes.from_record(answer).counts for answer in answers], axis=0)

    def class_histograms(self, bins: QuantileBins, trees: Sequence[Tree], open_nodes: Sequence[OpenNode], bootstrap_seed: int | None) -> np.ndarray:
        growing = TreeEnsemble(tuple(trees), 0.0, "mean_probability")
        return self._histograms("class", bins, TreeEnsemble((), 0.0, "mean_probability"), growing, open_nodes, bootstrap_seed)

    def gradient_histograms(self, bins: QuantileBins, completed: TreeEnsemble, trees: Sequence[Tree], open_nodes: Sequence[OpenNode]) -> np.ndarray:
        return self._histograms("gradient", bins, completed, TreeEnsemble(tuple(trees), 0.0, "logistic_sum"), open_nodes, None)

    def _histograms(
        self,
        kind: HistogramKind,
        bins: QuantileBins,
        completed: TreeEnsemble,
        growing: TreeEnsemble,
        open_nodes: Sequence[OpenNode],
        bootstrap_seed: int | None,
    ) -> np.ndarray:
        ins = HistIns(
            kind=kind,
            rows=self.rows,
            preprocessing=self.preprocessing,
            class_weights=self.class_weights,
            cuts=bins.cuts,
            completed=encode(completed),
            growing=encode(growing),
            open_trees=np.array([node.tree for node in open_nodes], dtype=np.int64),
            open_nodes=np.array([node.node for node in open_nodes], dtype=np.int64),
            bootstrap=bootstrap_seed is not None,
            seed=self.seed if bootstrap_seed is not None else 0,
        )
        shape = (len(open_nodes), bins.n_features, bins.max_bins + 1, 3)
        answers = self.messaging.total(MessageKind.HISTOGRAMS, ins.to_record(), length=int(np.prod(shape)))
        if isinstance(answers, np.ndarray):
            total = answers.reshape(shape)
            return tree_privacy.postprocess(kind, total, self.class_weights) if self.private else total
        summed = np.sum([HistRes.from_record(answer).histograms for answer in answers], axis=0)
        if summed.shape != shape:
            raise ValueError(f"hubs answered histograms of shape {summed.shape}, expected {shape}")
        return summed


def _local_fits(
    messaging: _TaskMessaging, kind: MessageKind, rows: RowSelection, preprocessing: Preprocessing, class_weights: tuple[float, float]
) -> LocalResults:
    """The hubs' locally trained parameter vectors of one averaging round (SVM, MLP)."""

    def local_fits(round_number: int, weights: np.ndarray) -> list[LocalFit]:
        content = TrainIns(round_number, weights, rows, preprocessing, class_weights).to_record()
        layout = WeightedFitLayout(weights.shape[0])
        answers = messaging.total(kind, content, length=layout.length)
        if isinstance(answers, np.ndarray):
            return [layout.decode(answers)]
        return [FitRes.from_record(answer).fit for answer in answers]

    return local_fits


def _train_svm(
    coordinator: Coordinator, messaging: _TaskMessaging, model: LinearSvmSpec, rows: RowSelection, preprocessing: Preprocessing, class_weights: tuple[float, float]
) -> tuple[np.ndarray, int, bool]:
    spec = coordinator.spec

    def platt_results(weights: np.ndarray) -> PlattResults:
        def sums(round_number: int, platt: np.ndarray) -> list[NewtonSums]:
            content = PlattIns(round_number, weights, platt, rows, preprocessing).to_record()
            layout = NewtonLayout(2)
            answers = messaging.total(MessageKind.PLATT, content, length=layout.length)
            if isinstance(answers, np.ndarray):
                return [layout.decode(answers)]
            return [NewtonRes.from_record(answer).sums for answer in answers]

        return sums

    fitted, trace = train_linear_svm(
        coordinator.aggregator,
        LogisticObjective(model.l2, class_weights),
        zero_weights(len(spec.model_inputs)),
        _local_fits(messaging, MessageKind.SVM_FIT, rows, preprocessing, class_weights),
        platt_results,
        max_rounds=spec.training.rounds,
        tolerance=spec.training.tolerance,
    )
    return encode(fitted), trace.rounds, trace.converged


def _train_mlp(
    coordinator: Coordinator, messaging: _TaskMessaging, model: MlpSpec, rows: RowSelection, preprocessing: Preprocessing, class_weights: tuple[float, float]
) -> tuple[np.ndarray, int, bool]:
    spec = coordinator.spec
    params, n_inputs = model.params(), len(spec.model_inputs)
    trace = run_rounds(
        coordinator.aggregator,
        LogisticObjective(class_weights=class_weights),  # the hubs apply the penalty in their local steps
        initial_vector(n_inputs, params, spec.seed),
        _local_fits(messaging, MessageKind.MLP_FIT, rows, preprocessing, class_weights),
        max_rounds=spec.training.rounds,
        tolerance=spec.training.tolerance,
    )
    fitted = MlpModel(trace.weights, n_inputs, params.hidden_units, params.activation)
    return encode(fitted), trace.rounds, trace.converged


def train_model_task(coordinator: Coordinator, task: Task, train_rows: RowSelection) -> TrainedModel:
    """Preprocess and train the study's (non-logistic) model for `task` over its hubs."""
    spec = coordinator.spec
    trainers = coordinator._nodes(exclude=task.held_out_hub)
    required = coordinator._required(task)
    preprocessing, class_weights = coordinator._task_preprocessing(task, trainers, train_rows, required)
    messaging = _TaskMessaging(coordinator, task, required)
    if isinstance(spec.model, LinearSvmSpec):
        vector, rounds, converged = _train_svm(coordinator, messaging, spec.model, train_rows, preprocessing, class_weights)
    elif isinstance(spec.model, MlpSpec):
        vector, rounds, converged = _train_mlp(coordinator, messaging, spec.model, train_rows, preprocessing, class_weights)
    else:
        private = spec.pets.dp is not None
        federation = HubTreeFederation(messaging, train_rows, preprocessing, class_weights, spec.seed, private)
        bins = standard_normal_bins(len(spec.model_inputs), spec.model.max_bins) if private else None  # type: ignore[union-attr]
        margin = tree_privacy.released_log_odds(coordinator.released_outcomes, class_weights) if private else None
        vector = encode(fit_tree_model(spec.model.params(), federation, seed=spec.seed, bins=bins, base_margin=margin))
        rounds, converged = messaging.rounds, True
    return TrainedModel(
        columns=spec.study_columns,
        log_columns=spec.preprocessing.log_transform,
        categories=spec.preprocessing.categories,
        preprocessing=preprocessing,
        weights=vector,
        rounds=rounds,
        converged=converged,
        trained_on=tuple(coordinator.federation.names[n] for n in coordinator._nodes(exclude=task.held_out_hub)),
        model_name=spec.model.name,
    )
