"""Federated logistic regression through the engine equals centralised training: federated
Newton reaches the pooled solution; FedAvg/FedProx/FedAdam come close in AUROC; a seeded run
repeats bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from flute.evaluate.discrimination import auroc
from flute.evaluate.exact import exact_auroc
from flute.learn.estimator import FederatedLogisticRegression
from flute.learn.preprocess import Standardiser, column_sums, log_transform

from .engine_inputs import COLUMNS, LOG_COLUMNS, make_spec, pooled, run_study, synthetic_hubs


def centralised(tables, l2: float) -> tuple[FederatedLogisticRegression, np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    whole = pooled(tables)
    standardiser = Standardiser.from_sums(COLUMNS, LOG_COLUMNS, column_sums(log_transform(whole.features, COLUMNS, LOG_COLUMNS)))
    inputs = standardiser.transform(whole.features)
    return FederatedLogisticRegression(l2=l2).fit(inputs, whole.labels), inputs, whole.labels


def test_federated_newton_equals_centralised_lr_and_sklearn() -> None:
    from sklearn.linear_model import LogisticRegression

    tables = synthetic_hubs()
    result = run_study(tables, make_spec())
    model, inputs, labels = centralised(tables, l2=0.001)
    assert result.final_model.converged and result.final_model.rounds <= 10
    np.testing.assert_allclose(result.final_model.weights, model.weights_, atol=1e-9)
    reference = LogisticRegression(C=1.0 / (0.001 * labels.shape[0]), tol=1e-12, max_iter=10_000).fit(inputs, labels)
    np.testing.assert_allclose(model.coef_, reference.coef_[0], atol=1e-6)
    assert model.intercept_ == pytest.approx(reference.intercept_[0], abs=1e-6)


@pytest.mark.parametrize(
    "strategy",
    [{"name": "fedavg"}, {"name": "fedprox", "mu": 0.1}, {"name": "fedadam", "server_learning_rate": 0.05}],
    ids=["fedavg", "fedprox", "fedadam"],
)
def test_gradient_strategies_match_centralised_auroc(strategy: dict[str, object]) -> None:
    tables = synthetic_hubs()
    spec = make_spec(strategy=strategy, training={"rounds": 60, "local_epochs": 5, "learning_rate": 0.5, "tolerance": 1e-6})
    federated = run_study(tables, spec).final_model
    model, _, labels = centralised(tables, l2=0.001)
    whole = pooled(tables)
    fed_auroc = exact_auroc(labels, federated.predict(whole.features))
    central_auroc = exact_auroc(labels, model.predict_proba(_inputs(tables))[:, 1])
    assert abs(fed_auroc - central_auroc) < 0.005


def _inputs(tables) -> np.ndarray:  # type: ignore[no-untyped-def]
    whole = pooled(tables)
    standardiser = Standardiser.from_sums(COLUMNS, LOG_COLUMNS, column_sums(log_transform(whole.features, COLUMNS, LOG_COLUMNS)))
    return standardiser.transform(whole.features)


def test_cross_validation_and_leave_one_hub_out_report_every_site() -> None:
    result = run_study(synthetic_hubs(), make_spec(evaluation={"cv_folds": 3, "leave_one_hub_out": True}, model={"class_weight": "balanced"}))
    assert [o.task.key for o in result.outcomes] == ["cv-fold-0", "cv-fold-1", "cv-fold-2", "loho-hub-a", "loho-hub-b", "loho-hub-c", "final"]
    per_site = result.cv_site_summaries()
    assert {hub: s.n for hub, s in per_site.items()} == {c.hub: c.n for c in result.hubs}
    assert 0.7 < auroc(result.cv_pooled_summary()).value < 0.95
    loho = result.loho_summaries()
    assert {hub: s.n for hub, s in loho.items()} == {c.hub: c.n for c in result.hubs}
    assert result.of_kind("loho")[0].model.trained_on == ("hub-b", "hub-c")


def test_a_seeded_study_repeats_bit_for_bit() -> None:
    spec = make_spec(strategy={"name": "fedadam"}, training={"rounds": 15}, evaluation={"cv_folds": 2})
    first, second = run_study(synthetic_hubs(), spec), run_study(synthetic_hubs(), spec)
    for a, b in zip(first.outcomes, second.outcomes, strict=True):
        assert a.model.weights.tobytes() == b.model.weights.tobytes()
        assert all(x.summary.equals(y.summary) for x, y in zip(a.scores, b.scores, strict=True))
