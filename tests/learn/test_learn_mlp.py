"""Federated one-hidden-layer network (F-HUF-7): exact gradients, one local epoch is pooled
gradient descent, a seeded run repeats, FedAvg with several local epochs stays close to pooled."""

from __future__ import annotations

import numpy as np
import pytest

from flute.evaluate.exact import exact_auroc
from flute.learn.federated_estimators import FederatedMlp
from flute.learn.mlp import Activation, MlpModel, MlpParams, initial_vector, local_mlp_descent, n_parameters
from flute.learn.models import ModelFormatError, decode, encode

from .learn_inputs import pooled, three_hubs, without_missing


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_local_step_follows_the_exact_gradient_of_the_penalised_loss(activation: Activation) -> None:
    x, y = pooled(without_missing(three_hubs()))
    x, y = x[:60, :3], y[:60]
    params = MlpParams(hidden_units=4, l2=0.1, activation=activation)
    vector = initial_vector(3, params, seed=1) + np.random.default_rng(2).normal(0.0, 0.1, n_parameters(3, 4))
    penalised = np.zeros_like(vector)
    penalised[:12], penalised[16:20] = 1.0, 1.0  # connection weights, not biases

    def loss(v: np.ndarray) -> float:
        risk = MlpModel(v, 3, 4, activation).predict_risk(x)
        return float(np.mean(-(y * np.log(risk) + (1 - y) * np.log(1 - risk))) + 0.05 * np.sum(penalised * v * v))

    step = vector - local_mlp_descent(vector, x, y, (1.0, 1.0), params, epochs=1, learning_rate=1.0).weights
    numeric = np.array([(loss(vector + e) - loss(vector - e)) / 2e-6 for e in np.eye(vector.shape[0]) * 1e-6])
    np.testing.assert_allclose(step, numeric, atol=1e-7)


def test_one_local_epoch_is_pooled_gradient_descent() -> None:
    hubs = without_missing(three_hubs())
    federated = FederatedMlp(MlpParams(hidden_units=4), local_epochs=1, max_rounds=40).fit_partitions(hubs)
    central = FederatedMlp(MlpParams(hidden_units=4), local_epochs=1, max_rounds=40).fit(*pooled(hubs))
    np.testing.assert_allclose(federated.model_.vector, central.model_.vector, rtol=0, atol=1e-12)


def test_fedavg_auroc_is_close_to_pooled_and_the_seed_fixes_the_run() -> None:
    hubs = without_missing(three_hubs())
    x, y = pooled(hubs)
    params = MlpParams(hidden_units=4, l2=0.01)
    federated = FederatedMlp(params, max_rounds=150, seed=3).fit_partitions(hubs)
    central = FederatedMlp(params, max_rounds=150, seed=3).fit(x, y)
    assert abs(exact_auroc(y, federated.predict_proba(x)[:, 1]) - exact_auroc(y, central.predict_proba(x)[:, 1])) <= 0.01
    again = FederatedMlp(params, max_rounds=150, seed=3).fit_partitions(hubs)
    np.testing.assert_array_equal(again.model_.vector, federated.model_.vector)


def test_parameter_vector_round_trip_and_refusals() -> None:
    x, y = pooled(without_missing(three_hubs()))
    model = FederatedMlp(MlpParams(hidden_units=3, activation="relu"), max_rounds=5).fit(x, y).model_
    vector = encode(model)
    np.testing.assert_array_equal(decode("mlp", vector, n_inputs=4).predict_risk(x), model.predict_risk(x))
    with pytest.raises(ModelFormatError, match="vector of"):
        decode("mlp", vector[:-1], n_inputs=4)
    with pytest.raises(ModelFormatError, match="hidden units, activation code"):
        decode("mlp", np.concatenate([[3.0, 7.0], vector[2:]]), n_inputs=4)
