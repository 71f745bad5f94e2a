"""What a hub computes for the tree, forest, boosting, SVM and MLP messages, and for scoring any
model of the registry (F-HUF-4..7, F-SRS-5).

As in `flute.engine.hub_steps`, every request is checked against the hub's own copy of the spec:
the histogram kind must be the one its model grows from, a forest's bootstrap seed must be the
study seed, trees must decode as the study's model with the study's features, and SVM and MLP
options (loss, penalty, size, epochs, learning rate, proximal term) come from the spec, not from
messages.
Only sums over rows and model parameters leave these functions (URS-1, URS-12).
"""

from __future__ import annotations

import zlib

import numpy as np

from flute.cohort.table import StudyTable
from flute.engine import tree_privacy
from flute.engine.hub_steps import HubRefusal, select_rows, study_standardiser
from flute.engine.model_specs import GbdtSpec, LinearSvmSpec, MlpSpec, RandomForestSpec
from flute.engine.records import EvalIns, EvalRes, FitRes, NewtonRes, Preprocessing, RowSelection, TrainIns
from flute.engine.spec import FedProxSpec, StudySpec
from flute.engine.tree_records import BinsIns, BinsRes, HistIns, HistRes, PlattIns
from flute.evaluate.summary import summarise_scores
from flute.learn.binning import FineGrid, QuantileBins, fine_histograms
from flute.learn.logistic import LogisticObjective
from flute.learn.mlp import DpSgd, dp_mlp_descent, local_mlp_descent, n_parameters
from flute.learn.models import ModelFormatError, decode
from flute.learn.svm import local_svm_descent, platt_sums
from flute.learn.tree import OpenNode
from flute.learn.tree_models import TreeEnsemble, hub_class_histograms, hub_gradient_histograms

FINE_GRID = FineGrid()


def model_inputs(spec: StudySpec, table: StudyTable, rows: RowSelection, preprocessing: Preprocessing) -> StudyTable:
    """The selected rows as model inputs: the study's transforms, impute and standardise with the global
    preprocessing, the same arithmetic as for logistic regression."""
    standardiser = study_standardiser(spec, preprocessing)
    selected = select_rows(table, rows)
    return StudyTable(standardiser.inputs, standardiser.transform(selected.features), selected.labels)


def bootstrap_stream(hub: str) -> int:
    """A hub's own bootstrap stream, fixed by its name, so a seeded forest repeats exactly."""
    return zlib.crc32(hub.encode("utf-8"))


def fine_counts(spec: StudySpec, table: StudyTable, ins: BinsIns) -> BinsRes:
    data = model_inputs(spec, table, ins.rows, ins.preprocessing)
    return BinsRes(fine_histograms(data.features, FINE_GRID))


def _decode_trees(spec: StudySpec, vector: np.ndarray, what: str) -> TreeEnsemble:
    try:
        model = decode(spec.model.name, vector, len(spec.model_inputs))
    except ModelFormatError as exc:
        raise HubRefusal(f"{what}: {exc}") from exc
    if not isinstance(model, TreeEnsemble):
        raise HubRefusal(f"{what}: the study's model {spec.model.name!r} is not grown from histograms")
    return model


def _check_histogram_request(spec: StudySpec, ins: HistIns) -> None:
    model = spec.model
    expected_kind = "gradient" if isinstance(model, GbdtSpec) else "class"
    if ins.kind != expected_kind:
        raise HubRefusal(f"{ins.kind} histograms requested, but the study's model {model.name!r} grows from {expected_kind} histograms")
    wants_bootstrap = isinstance(model, RandomForestSpec) and model.bootstrap
    if ins.bootstrap != wants_bootstrap or (ins.bootstrap and ins.seed != spec.seed):
        raise HubRefusal("the request's bootstrap settings differ from the study spec's model and seed")
    _check_class_weights(spec, ins.class_weights)
    max_bins = model.max_bins  # type: ignore[union-attr]
    if len(ins.cuts) != len(spec.model_inputs) or any(c.shape[0] > max_bins - 1 or np.any(np.diff(c) <= 0) for c in ins.cuts):
        raise HubRefusal(f"bin cuts must be increasing, one set per study variable, at most {max_bins - 1} each")


def dp_histogram_sensitivity(spec: StudySpec, ins: HistIns) -> float:
    """The L2 sensitivity of the histograms `ins` asks for (`flute.engine.tree_privacy`), after
    checking the request keeps it: valid, and its open nodes distinct leaves of the trees sent."""
    _check_histogram_request(spec, ins)
    growing = _decode_trees(spec, ins.growing, "growing trees")
    open_nodes = [OpenNode(int(t), int(n)) for t, n in zip(ins.open_trees, ins.open_nodes)]
    _check_open_nodes(growing, open_nodes)
    try:
        n_trees = tree_privacy.trees_touched(growing.trees, open_nodes)
    except ValueError as exc:
        raise HubRefusal(f"DP histograms refused: {exc}") from exc
    return tree_privacy.histogram_sensitivity(ins.kind, ins.class_weights, n_trees, len(spec.model_inputs))


def _check_open_nodes(growing: TreeEnsemble, open_nodes: list[OpenNode]) -> None:
    if any(not (0 <= node.tree < len(growing.trees) and 0 <= node.node < growing.trees[node.tree].n_nodes) for node in open_nodes):
        raise HubRefusal("an open node does not exist in the trees sent")


def histograms(spec: StudySpec, table: StudyTable, ins: HistIns, hub: str) -> HistRes:
    _check_histogram_request(spec, ins)
    growing = _decode_trees(spec, ins.growing, "growing trees")
    completed = _decode_trees(spec, ins.completed, "completed trees")
    open_nodes = [OpenNode(int(t), int(n)) for t, n in zip(ins.open_trees, ins.open_nodes)]
    _check_open_nodes(growing, open_nodes)
    data = model_inputs(spec, table, ins.rows, ins.preprocessing)
    bins = QuantileBins(ins.cuts, spec.model.max_bins)  # type: ignore[union-attr]
    if ins.kind == "gradient":
        sums = hub_gradient_histograms(data.features, data.labels, bins, completed, growing.trees, open_nodes, ins.class_weights)
    else:
        seed = ins.seed if ins.bootstrap else None
        sums = hub_class_histograms(data.features, data.labels, bins, growing.trees, open_nodes, ins.class_weights, seed, bootstrap_stream(hub))
    return HistRes(sums)


def _proximal_mu(spec: StudySpec) -> float:
    return spec.strategy.mu if isinstance(spec.strategy, FedProxSpec) else 0.0


def _check_class_weights(spec: StudySpec, class_weights: tuple[float, float]) -> None:
    if spec.model.class_weight == "none" and class_weights != (1.0, 1.0):
        raise HubRefusal(f"the spec has class_weight 'none' but the request carries class weights {class_weights}")


def mlp_fit(spec: StudySpec, table: StudyTable, ins: TrainIns, dp: DpSgd | None = None) -> FitRes:
    """The hub's local MLP steps; with `dp`, DP-SGD with noise from a fresh cryptographic source."""
    if not isinstance(spec.model, MlpSpec):
        raise HubRefusal(f"an MLP step was requested, but the study's model is {spec.model.name!r}")
    _check_class_weights(spec, ins.class_weights)
    expected = n_parameters(len(spec.model_inputs), spec.model.hidden_units)
    if ins.weights.shape != (expected,):
        raise HubRefusal(f"weights have shape {ins.weights.shape}; the study's MLP has {expected} parameters")
    data = model_inputs(spec, table, ins.rows, ins.preprocessing)
    settings = {"epochs": spec.training.local_epochs, "learning_rate": spec.training.learning_rate, "proximal_mu": _proximal_mu(spec)}
    params = spec.model.params()
    if dp is None:
        return FitRes(local_mlp_descent(ins.weights, data.features, data.labels, ins.class_weights, params, **settings))  # type: ignore[arg-type]
    from flute.privacy.dp.mechanisms import NoiseSource

    noise = NoiseSource.secure()
    return FitRes(dp_mlp_descent(ins.weights, data.features, data.labels, ins.class_weights, params, dp, noise, **settings))  # type: ignore[arg-type]


def _svm_spec(spec: StudySpec) -> LinearSvmSpec:
    if not isinstance(spec.model, LinearSvmSpec):
        raise HubRefusal(f"an SVM step was requested, but the study's model is {spec.model.name!r}")
    return spec.model


def svm_fit(spec: StudySpec, table: StudyTable, ins: TrainIns) -> FitRes:
    model = _svm_spec(spec)
    _check_class_weights(spec, ins.class_weights)
    if ins.weights.shape != (len(spec.model_inputs) + 1,):
        raise HubRefusal(f"weights have shape {ins.weights.shape}; the study's SVM has {len(spec.model_inputs) + 1}")
    data = model_inputs(spec, table, ins.rows, ins.preprocessing)
    fit = local_svm_descent(
        ins.weights,
        data.features,
        data.labels,
        LogisticObjective(model.l2, ins.class_weights),
        model.loss,
        epochs=spec.training.local_epochs,
        learning_rate=spec.training.learning_rate,
        proximal_mu=_proximal_mu(spec),
    )
    return FitRes(fit)


def platt(spec: StudySpec, table: StudyTable, ins: PlattIns) -> NewtonRes:
    _svm_spec(spec)
    if ins.weights.shape != (len(spec.model_inputs) + 1,):
        raise HubRefusal(f"weights have shape {ins.weights.shape}; the study's SVM has {len(spec.model_inputs) + 1}")
    data = model_inputs(spec, table, ins.rows, ins.preprocessing)
    return NewtonRes(platt_sums(ins.platt, ins.weights, data.features, data.labels))


def score_model(spec: StudySpec, table: StudyTable, ins: EvalIns) -> EvalRes:
    """The risk histogram of the selected rows under the study's model with these parameters."""
    try:
        model = decode(spec.model.name, ins.weights, len(spec.model_inputs))
    except ModelFormatError as exc:
        raise HubRefusal(str(exc)) from exc
    data = model_inputs(spec, table, ins.rows, ins.preprocessing)
    return EvalRes(summarise_scores(data.labels, model.predict_risk(data.features), spec.score_grid()))
