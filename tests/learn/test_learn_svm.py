"""Federated linear SVM (F-HUF-6): FedAvg/FedProx local steps reach the pooled model's AUROC,
one local epoch is exactly pooled gradient descent, and the federated Platt map only recalibrates."""

from __future__ import annotations

import numpy as np
import pytest

from flute.evaluate.exact import exact_auroc
from flute.learn.aggregation import FedAdamAggregator
from flute.learn.federated_estimators import FederatedLinearSvm
from flute.learn.models import decode, encode
from flute.learn.svm import LinearSvmParams

from .learn_inputs import pooled, three_hubs, without_missing


@pytest.mark.parametrize("loss", ["squared_hinge", "hinge"])
def test_federated_svm_auroc_is_within_0_01_of_pooled(loss: str) -> None:
    hubs = without_missing(three_hubs())
    x, y = pooled(hubs)
    params = LinearSvmParams(loss=loss, l2=0.01)  # type: ignore[arg-type]
    federated = FederatedLinearSvm(params, max_rounds=300, local_epochs=5, learning_rate=0.2).fit_partitions(hubs)
    central = FederatedLinearSvm(params, max_rounds=300, local_epochs=5, learning_rate=0.2).fit(x, y)
    gap = exact_auroc(y, federated.predict_proba(x)[:, 1]) - exact_auroc(y, central.predict_proba(x)[:, 1])
    assert abs(gap) <= 0.01
    assert exact_auroc(y, federated.predict_proba(x)[:, 1]) > 0.75


def test_one_local_epoch_is_pooled_gradient_descent() -> None:
    hubs = without_missing(three_hubs())
    federated = FederatedLinearSvm(local_epochs=1, max_rounds=50).fit_partitions(hubs)
    central = FederatedLinearSvm(local_epochs=1, max_rounds=50).fit(*pooled(hubs))
    np.testing.assert_allclose(federated.model_.svm_weights, central.model_.svm_weights, rtol=0, atol=1e-12)
    np.testing.assert_allclose(federated.model_.platt, central.model_.platt, rtol=0, atol=1e-9)


def test_fedprox_and_fedadam_also_train_a_useful_svm() -> None:
    hubs = without_missing(three_hubs())
    x, y = pooled(hubs)
    for model in (
        FederatedLinearSvm(proximal_mu=0.5, max_rounds=100),
        FederatedLinearSvm(aggregator=FedAdamAggregator(0.1, 0.9, 0.99, 1e-3), max_rounds=100),
    ):
        assert exact_auroc(y, model.fit_partitions(hubs).predict_proba(x)[:, 1]) > 0.75


def test_platt_map_is_increasing_so_probabilities_rank_like_the_decision_function() -> None:
    hubs = without_missing(three_hubs())
    x, y = pooled(hubs)
    model = FederatedLinearSvm().fit_partitions(hubs)
    assert model.model_.platt[1] > 0
    assert exact_auroc(y, model.predict_proba(x)[:, 1]) == pytest.approx(exact_auroc(y, model.decision_function(x)), abs=1e-12)
    # calibrated in the large on the training rows: mean risk = prevalence (the Platt fit's score equation)
    assert model.predict_proba(x)[:, 1].mean() == pytest.approx(y.mean(), abs=1e-6)
    restored = decode("linear_svm", encode(model.model_), n_inputs=4)
    np.testing.assert_array_equal(restored.predict_risk(x), model.predict_proba(x)[:, 1])


def test_newton_aggregation_is_refused_for_the_svm() -> None:
    from flute.learn.aggregation import NewtonAggregator

    with pytest.raises(ValueError, match="local steps"):
        FederatedLinearSvm(aggregator=NewtonAggregator())  # type: ignore[arg-type]
