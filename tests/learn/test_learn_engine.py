"""Trees, forests, boosting, the linear SVM and the MLP through the engine (F-HUF-4..7, F-SRS-5): an
embedded study over three in-memory hubs trains exactly the model the same algorithm trains
in-process over the hubs' rows, validates it by histograms (CV and leave-one-hub-out), keeps it
in its result, and under secure aggregation reveals no hub's answer."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from flute.engine.apps import client_app, server_app
from flute.engine.embedded import HubBinding, run_embedded, study_run_config
from flute.engine.hub_steps import HubRefusal
from flute.engine.pet_records import is_array_free
from flute.engine.records import Preprocessing, RowSelection, TrainIns
from flute.engine.result import StudyResult, TrainedModel
from flute.engine.sources import InMemorySource
from flute.engine import tree_steps
from flute.engine.tree_records import HistIns
from flute.evaluate.discrimination import auroc
from flute.learn.federated_estimators import FederatedLinearSvm, FederatedMlp
from flute.learn.preprocess import Standardiser
from flute.learn.tree_models import Partitions, fit_tree_model

from .zoo_specs import HUB_NAMES, raw_hubs, run_zoo_study, zoo_spec

MODELS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "decision_tree": ({"name": "decision_tree", "max_depth": 3, "min_rows_leaf": 10}, {}),
    "random_forest": ({"name": "random_forest", "n_trees": 4, "max_depth": 3, "min_rows_leaf": 10}, {}),
    "gbdt": ({"name": "gbdt", "n_trees": 4, "max_depth": 2, "learning_rate": 0.3}, {}),
    "linear_svm": ({"name": "linear_svm", "l2": 0.01}, {"strategy": {"name": "fedavg"}}),
    "mlp": ({"name": "mlp", "hidden_units": 4}, {"strategy": {"name": "fedprox", "mu": 0.1}, "training": {"rounds": 30, "local_epochs": 3, "learning_rate": 0.5}}),
}


def _hub_inputs(model: TrainedModel) -> list[tuple[np.ndarray, np.ndarray]]:
    standardiser = Standardiser(model.columns, model.log_columns, model.preprocessing.means, model.preprocessing.scales)
    return [(standardiser.transform(table.features), table.labels) for table in raw_hubs()]


def _in_process_model(spec_model: Any, spec: Any, final: TrainedModel) -> np.ndarray:
    """The same algorithm run in-process over the hubs' rows, with the engine's preprocessing."""
    partitions = _hub_inputs(final)
    x = np.vstack([p[0] for p in partitions])
    training = {
        "max_rounds": spec.training.rounds, "tol": spec.training.tolerance,
        "local_epochs": spec.training.local_epochs, "learning_rate": spec.training.learning_rate,
    }  # fmt: skip
    if spec_model.name == "linear_svm":
        return FederatedLinearSvm(spec_model.params(), **training).fit_partitions(partitions).predict_proba(x)[:, 1]
    if spec_model.name == "mlp":
        mlp = FederatedMlp(spec_model.params(), proximal_mu=spec.strategy.mu, seed=spec.seed, **training)
        return mlp.fit_partitions(partitions).predict_proba(x)[:, 1]
    streams = [tree_steps.bootstrap_stream(name) for name in HUB_NAMES]
    model = fit_tree_model(spec_model.params(), Partitions(partitions, streams=streams), seed=spec.seed)
    return model.predict_risk(x)


@pytest.mark.parametrize("name", list(MODELS))
def test_engine_trains_the_in_process_model_and_validates_it(name: str) -> None:
    model, sections = MODELS[name]
    spec = zoo_spec(model, **sections)
    result = run_zoo_study(spec)
    final = result.final_model
    assert final.model_name == name and final.trained_on == HUB_NAMES
    x = np.vstack([p[0] for p in _hub_inputs(final)])
    np.testing.assert_allclose(final.fitted().predict_risk(x), _in_process_model(spec.model, spec, final), rtol=0, atol=1e-9)
    assert len(result.of_kind("cv")) == 2
    assert auroc(result.cv_pooled_summary()).value > 0.7
    restored = StudyResult.from_record(result.to_record()).final_model
    raw = np.vstack([table.features for table in raw_hubs()])
    np.testing.assert_array_equal(restored.predict(raw), final.predict(raw))


def test_leave_one_hub_out_scores_each_held_out_hub_with_a_tree_trained_on_the_others() -> None:
    model, _ = MODELS["decision_tree"]
    result = run_zoo_study(zoo_spec(model, evaluation={"cv_folds": 0, "leave_one_hub_out": True}))
    assert set(result.loho_summaries()) == set(HUB_NAMES)
    for outcome in result.of_kind("loho"):
        assert outcome.task.held_out_hub not in outcome.model.trained_on
        assert outcome.scores[0].summary.n == next(t.n for n, t in zip(HUB_NAMES, raw_hubs()) if n == outcome.task.held_out_hub)


class RecordingClientApp:
    def __init__(self) -> None:
        self.replies: list[tuple[str, Any]] = []

    def __call__(self, message: Any, context: Any) -> Any:
        reply = client_app(message, context)
        self.replies.append((message.metadata.message_type, reply))
        return reply


@pytest.mark.parametrize("name", list(MODELS))
def test_secure_aggregation_trains_the_plaintext_model_and_releases_no_hub_array(name: str) -> None:
    model, sections = MODELS[name]
    evaluation = {"cv_folds": 2, "leave_one_hub_out": False, "score_bins": 2000}
    plain = run_zoo_study(zoo_spec(model, **sections, evaluation=evaluation))
    recorder = RecordingClientApp()
    hubs = [HubBinding(hub, source=InMemorySource(table)) for hub, table in zip(HUB_NAMES, raw_hubs())]
    spec = zoo_spec(model, **sections, evaluation=evaluation, pets={"mode": "secagg"})
    secure = run_embedded(server_app, recorder, hubs, study_run_config(spec))  # type: ignore[arg-type]
    raw = np.vstack([table.features for table in raw_hubs()])
    # fixed-point sums: equal to the plaintext model up to the encoding's resolution
    np.testing.assert_allclose(secure.final_model.predict(raw), plain.final_model.predict(raw), rtol=0, atol=1e-6)
    assert secure.cv_pooled_summary().n == plain.cv_pooled_summary().n
    for kind, reply in recorder.replies:
        assert not reply.has_error(), reply.error.reason
        assert is_array_free(reply.content), f"{kind} reply carries an array record"
    assert "evaluate.model" in {kind for kind, _ in recorder.replies}


def _histogram_request(kind: str, bootstrap: bool = False, seed: int = 0) -> HistIns:
    empty = np.array([0.0, 0.0, 0.0])
    leaf = np.array([0.0, 0.0, 1.0, 1.0, -1.0, 0.0, 0.0, 0.0, -1.0, -1.0, 0.0])
    preprocessing = Preprocessing(np.zeros(4), np.ones(4))
    return HistIns(
        kind, RowSelection(), preprocessing, (1.0, 1.0), tuple(np.array([0.0]) for _ in range(4)),  # type: ignore[arg-type]
        empty, leaf, np.array([0]), np.array([0]), bootstrap, seed,
    )  # fmt: skip


def test_hubs_refuse_requests_their_spec_does_not_allow() -> None:
    table = raw_hubs()[0]
    gbdt = zoo_spec(MODELS["gbdt"][0])
    forest = zoo_spec(MODELS["random_forest"][0])
    tree_steps.histograms(gbdt, table, _histogram_request("gradient"), "hub-a")  # the allowed request works
    with pytest.raises(HubRefusal, match="grows from gradient histograms"):
        tree_steps.histograms(gbdt, table, _histogram_request("class"), "hub-a")
    with pytest.raises(HubRefusal, match="bootstrap settings"):
        tree_steps.histograms(forest, table, _histogram_request("class", bootstrap=True, seed=99), "hub-a")
    with pytest.raises(HubRefusal, match="an SVM step was requested"):
        ins = TrainIns(1, np.zeros(5), RowSelection(), Preprocessing(np.zeros(4), np.ones(4)), (1.0, 1.0))
        tree_steps.svm_fit(gbdt, table, ins)
